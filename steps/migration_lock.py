"""One migration of a schema at a time: the sessions of `steps.migrate` and its migration lock.

`holding_migration_lock` holds the schema's lock (named by `core.database.migration_lock`) while a
push runs, waiting for it no longer than the migration's timeout. prod's schema (any that is not a
PR's) is locked by a row of `webstack_audit.locks` (`steps.database.prod_lock`), held by a
transaction on a session of its own, which no preview role can take; a PR schema's by a session
advisory lock keyed by its name (`hashtextextended('webstack-migrate:' || schema, 0)`, polled with
`pg_try_advisory_lock`): any role may hold an advisory key, so one PR can make another's migration
wait, never prod's. A wait past the timeout raises `MigrationTimeout`, as does a push that runs past
it; `terminate_push_backends` ends a killed push's server sessions. `connect_checked` opens the
step's sessions and says what is wrong when it cannot (a refused login, a missing database: permanent;
an unreachable host: transient).
"""

from __future__ import annotations

import contextlib
import time

from core.database import MIGRATE_APPLICATION, migrate_lock_session, migration_lock
from core.names import PR_SCHEMA
from steps.database import LockTimeout, connect, prod_lock
from steps.runtime import PermanentError, TransientError, log

TIMEOUT_ALERT = "migration timed out: manual intervention"


class MigrationTimeout(PermanentError):
    """The push (or the wait for another push's lock) ran past --timeout. Never retried: a hung
    migration may have left the schema half-changed, and a person has to look first."""

    alert_title = TIMEOUT_ALERT


def connect_checked(url: str, *, application_name: str):
    """Connect, turning a failure into an error that says what is wrong with the connection."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return connect(url, application_name=application_name)
    except psycopg.OperationalError as exc:
        params = conninfo_to_dict(url)
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}/{params.get('dbname', '')}"
        text = " ".join(str(exc).split())
        if "password authentication failed" in text or "authentication" in text or (exc.sqlstate or "").startswith("28"):
            raise PermanentError(
                f"the database at {where} refused the login: {text}",
                hint="check the user and password in DATABASE_URL (the CI secret)",
            ) from exc
        if "does not exist" in text or exc.sqlstate == "3D000":
            raise PermanentError(
                f"the database at {where} does not exist: {text}",
                hint="create the database or fix its name in DATABASE_URL",
            ) from exc
        raise TransientError(
            f"cannot reach the database at {where}: {text}",
            hint="check that the host and port in DATABASE_URL are right and reachable from CI",
        ) from exc


def lock_key(conn, schema: str) -> int:
    return conn.execute("SELECT pg_catalog.hashtextextended(%s, 0)", (migration_lock(schema),)).fetchone()[0]


def acquire_lock(conn, schema: str, deadline: float, timeout: float) -> int:
    """Hold the schema's migration lock on `conn` (session-level); wait for it until `deadline`."""
    key = lock_key(conn, schema)
    waited = False
    while not conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        if not waited:
            holders = conn.execute(
                "SELECT l.pid, a.application_name FROM pg_locks l"
                " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND (l.classid::bigint << 32) | l.objid::bigint = %s::bigint",
                (key,),
            ).fetchall()
            log(f"migrate: another migration of schema {schema} holds the lock ({holders}); waiting")
            waited = True
        if time.monotonic() >= deadline:
            raise MigrationTimeout(
                f"waited {timeout:.0f}s for another migration of schema {schema} to release its lock",
                hint="a migration of this schema is still running or hung: find it in pg_stat_activity "
                f"(application_name {MIGRATE_APPLICATION}:*), end it, check the schema, then re-run the deploy",
            )
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    return key


@contextlib.contextmanager
def holding_migration_lock(conn, url: str, schema: str, deadline: float, timeout: float):
    """Hold `schema`'s migration lock while the block runs (see the module docstring)."""
    if PR_SCHEMA.fullmatch(schema):
        key = acquire_lock(conn, schema, deadline, timeout)
        try:
            yield
        finally:
            # Closing the connection releases the lock too; a broken one must not hide the error.
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (key,))
        return
    # prod's: a row lock held by a transaction on a connection of its own, open while the block
    # runs (the queries on `conn` stay outside it, autocommitted).
    with connect_checked(url, application_name=migrate_lock_session(schema)) as lock_conn:
        with lock_conn.transaction():
            try:
                prod_lock(
                    lock_conn, migration_lock(schema), wait=max(0.001, deadline - time.monotonic()),
                    what=f"migrate: {schema}", log=log,
                )
            except LockTimeout as exc:
                raise MigrationTimeout(
                    f"waited {timeout:.0f}s for another migration of schema {schema} to release its lock ({exc})",
                    hint="a migration of this schema is still running or hung: find it in pg_stat_activity "
                    f"(application_name {MIGRATE_APPLICATION}:*), end it, check the schema, then re-run the deploy",
                ) from None
            yield


def terminate_push_backends(conn, application_name: str) -> int:
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    ).fetchall()
    return len(rows)
