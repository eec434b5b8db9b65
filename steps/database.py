"""The database facts the program's settings and the steps share: what a schema name may be,
which connection a migration may use, where the URL comes from, and how a step connects.

Imported by `components.settings` (validation before anything is declared) and by the steps
(validation again at deploy time, since a step can be run by hand), so the two never disagree.

Every connection a step opens (`connect`, `pin_search_path`) resolves names in the catalog first and
nowhere else a pull request could write: `search_path = pg_catalog, pg_temp`. A preview role holds
CREATE on the database, so it can create a schema named like prod's login role, which the default
path (`"$user", public`) searches, and plant functions there (`pg_has_role(name, text, text)`)
that a better-matching argument list makes PostgreSQL choose over the catalog's. Run by prod's
session, such a function runs with prod's privileges. The temporary schema comes last (PostgreSQL
searches it first for tables when it is not named) and is never searched for functions.

`prod_lock` serializes prod's own steps on a row of `webstack_audit.locks`, a table in the schema
that `workflow.preview_database` closes to every preview role. An advisory lock would not do: any
role may take any advisory key, and `pg_locks` shows everyone the keys that are held, so a pull
request's session could hold prod's key and stall prod's deploy. Every wait is bounded
(`lock_timeout`) and fails with `LockTimeout`, which names the holder and is never retried.
"""

from __future__ import annotations

import os
import re

from core.database import AUDIT_SCHEMA, LOCK_TABLE, SAFE_SEARCH_PATH, STEPS_APPLICATION
from steps.console import dsn_password_ambiguous, shown
from steps.retry import PermanentError

# A plain PostgreSQL identifier, matched whole: it is also quoted with `sql.Identifier` everywhere.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Supabase's transaction pooler: drizzle-kit push hangs there (docs/facts.md).
TRANSACTION_POOLER_PORT = 6543
CONNECT_TIMEOUT = 15
# How long a prod step waits for another run of itself before it fails (and alerts).
DEFAULT_LOCK_WAIT = 60.0


def schema_name_problem(name: str) -> str | None:
    """Why `name` is not a safe schema name, or None."""
    if SCHEMA_NAME.fullmatch(name):
        return None
    return (
        f"schema name {shown(name, 80)} is not a plain PostgreSQL identifier ([a-z_][a-z0-9_]{{0,62}}): "
        "use lower-case letters, digits and '_', at most 63, not starting with a digit"
    )


_ENCODE_HINT = "in a URL, percent-encode '@', '/', '?' and '#' in the password: %40, %2F, %3F, %23"


def _params(url: str) -> dict[str, str] | str:
    """libpq's parse of `url` (URL or keyword form), or why it cannot be used.

    The messages never quote the URL or a part of it: a piece of a badly encoded password could
    stand where a host or a port is expected.
    """
    from psycopg.conninfo import conninfo_to_dict

    if dsn_password_ambiguous(url):
        return (
            "the database URL has an unencoded '@', '/', '?' or '#' in its user or password, which libpq and "
            "other parsers split differently: percent-encode them (%40, %2F, %3F, %23)"
        )
    try:
        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - psycopg's message quotes the string; say it without it
        return (
            "the database URL is not a valid PostgreSQL connection string: use "
            f"postgres://user:password@host:5432/db or host=... port=... keywords ({_ENCODE_HINT})"
        )
    for port in str(params.get("port") or "").split(","):
        port = port.strip()
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return f"the database URL has a port that is not a number from 1 to 65535 ({_ENCODE_HINT})"
    return {k: str(v) for k, v in params.items()}


def dsn_problem(url: str) -> str | None:
    """Why `url` is not a usable PostgreSQL connection string (checked before connecting), or None."""
    params = _params(url)
    return params if isinstance(params, str) else None


def connection_problem(url: str) -> str | None:
    """Why `url` cannot be used to migrate (unparseable, or the transaction pooler), or None.

    Parsed the way libpq parses it, URL or keyword form, so a port given as `port=6543` or in a
    multi-host list is seen as well as `host:6543/db`.
    """
    params = _params(url)
    if isinstance(params, str):
        return params
    if _pooler_ports(params):
        return (
            f"the database URL uses port {TRANSACTION_POOLER_PORT} (Supabase's transaction pooler), where "
            "drizzle-kit push hangs: use the direct connection or the session pooler (port 5432)"
        )
    return None


def _pooler_ports(params: dict[str, str]) -> bool:
    ports = [port.strip() for port in str(params.get("port") or "").split(",")]
    return str(TRANSACTION_POOLER_PORT) in ports


def runtime_connection_warning(url: str) -> str | None:
    """Why `url` is a poor choice for the API at run time (a direct connection), or None.

    Every warm Lambda container keeps its own pool: through a direct connection each one holds
    server connections while idle, and a traffic spike runs the server out of them. The
    transaction pooler lends a server connection per transaction instead. Only the port tells
    the pooler apart, so a pooler on another port is warned about too (a warning, not a refusal).
    """
    params = _params(url)
    if isinstance(params, str) or _pooler_ports(params):
        return None
    return (
        f"the API's runtime database URL is a direct connection (not port {TRANSACTION_POOLER_PORT}, the "
        "transaction pooler): every warm function container holds its own server connections; set "
        "RUNTIME_DATABASE_URL (or `pulumi config set --secret runtimeDatabaseUrl ...`) to the pooler"
    )


def database_url() -> str:
    """DATABASE_URL from the process environment (the CI job's secret), never from a flag;
    refused before any connection when libpq could not use it as given (`dsn_problem`)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise PermanentError(
            "DATABASE_URL is not set",
            hint="set it in the CI job's environment (a secret), postgres://user:password@host:port/db",
        )
    problem = dsn_problem(url)
    if problem:
        raise PermanentError(
            problem.replace("the database URL", "DATABASE_URL", 1),
            hint="fix the DATABASE_URL secret of the CI job (nothing was done)",
        )
    return url


def pin_search_path(conn) -> None:
    """Make `conn` look names up in the catalog only (see the module docstring). `SET` is a
    utility statement: nothing in it is looked up on the path it replaces."""
    conn.execute(f"SET search_path = {SAFE_SEARCH_PATH}")


def connect(url: str, *, application_name: str = STEPS_APPLICATION, autocommit: bool = True):
    """A psycopg connection (autocommit unless told) with its search_path pinned; errors are
    classified by the runtime (steps.retry)."""
    import psycopg  # imported here: the CLI's argument checks run without a database driver

    conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT, application_name=application_name)
    try:
        pin_search_path(conn)
        if not autocommit:
            conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


class LockTimeout(PermanentError):
    """A prod step waited its whole bound for a lock. Never retried: what holds it is a run that
    is still going or hung, and a person has to look (the step's critical alert says so)."""


def _create_lock_table(conn) -> None:
    """`webstack_audit.locks`, if missing. Two first deploys may race to create it: the loser's
    duplicate is ignored (inside a savepoint, so the transaction goes on)."""
    from psycopg import errors, sql

    if conn.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (f"{AUDIT_SCHEMA}.{LOCK_TABLE}",)).fetchone()[0]:
        return
    for statement in (
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(AUDIT_SCHEMA)),
        sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY)").format(sql.Identifier(AUDIT_SCHEMA, LOCK_TABLE)),
    ):
        try:
            with conn.transaction():
                conn.execute(statement)
        except (errors.UniqueViolation, errors.DuplicateSchema, errors.DuplicateTable):
            pass


def _lock_holders(conn) -> str:
    """Who holds a row lock on the lock table now (pid and application_name), for the messages."""
    rows = conn.execute(
        "SELECT l.pid, a.application_name FROM pg_catalog.pg_locks l"
        " LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()"
        " AND l.relation = pg_catalog.to_regclass(%s) AND l.mode = 'RowShareLock' ORDER BY l.pid",
        (f"{AUDIT_SCHEMA}.{LOCK_TABLE}",),
    ).fetchall()
    return ", ".join(f"pid {pid} ({app or 'no application_name'})" for pid, app in rows) or "a session that has ended"


def prod_lock(conn, name: str, *, wait: float, what: str, log=None) -> None:
    """Hold prod's lock `name` until `conn`'s current transaction ends; wait at most `wait`
    seconds for it, then raise LockTimeout naming the holder.

    Must run inside a transaction (`with conn.transaction():` on an autocommit connection). The
    lock is a row lock on `webstack_audit.locks`: only a role that may UPDATE that table can take
    it, so a preview role cannot (the schema is closed to it: `workflow.preview_database`).
    `lock_timeout` is set for the rest of the transaction, so every later lock wait in it is
    bounded by `wait` as well.
    """
    from psycopg import errors, sql

    conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (f"{max(1, int(wait * 1000))}ms",))
    table = sql.Identifier(AUDIT_SCHEMA, LOCK_TABLE)
    holders = "another session"
    try:
        _create_lock_table(conn)
        conn.execute(sql.SQL("INSERT INTO {} (name) VALUES (%s) ON CONFLICT DO NOTHING").format(table), (name,))
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SELECT 1 FROM {} WHERE name = %s FOR UPDATE NOWAIT").format(table), (name,))
            return
        except errors.LockNotAvailable:
            holders = _lock_holders(conn)
        if log:
            log(f"{what}: waiting up to {wait:.0f}s for the lock {name!r}, held by {holders}")
        conn.execute(sql.SQL("SELECT 1 FROM {} WHERE name = %s FOR UPDATE").format(table), (name,))
    except errors.InsufficientPrivilege as exc:
        raise PermanentError(
            f"{what}: cannot take the lock {name!r}: {' '.join(str(exc).split())}",
            hint=f"{AUDIT_SCHEMA} must be owned by prod's role (a preview may have created it first): check its owner "
            "and contents, then `ALTER SCHEMA ... OWNER TO <prod role>` as an administrator",
        ) from None
    except errors.LockNotAvailable:
        raise LockTimeout(
            f"{what}: waited {wait:.0f}s for the lock {name!r} ({AUDIT_SCHEMA}.{LOCK_TABLE}), held by "
            f"{holders}",
            hint="another run of this step is still going or hung: find it in pg_stat_activity by its pid, "
            "let it finish or end it (pg_terminate_backend), then re-run the deploy",
        ) from None
