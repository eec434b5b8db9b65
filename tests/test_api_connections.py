"""The bundled API under load against a real PostgreSQL that has few connections, and through a
real PgBouncer in transaction mode.

Each "container" is a `node` process holding the handler's pool between requests, as a warm
Lambda execution environment does (tests/support/api_containers.py). The handler logs in as
`api`, a role without superuser rights: it may open connections while fewer than
`max_connections` minus the 3 slots reserved for superusers are open, 14 - 3 = 11, one of which
the test's own sampling connection takes; 10 is the connection limit these tests budget against.
What the pools hold is read from `pg_stat_activity` (and PgBouncer's `SHOW POOLS`), never from
the handler's own account.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from components.settings import (
    PROJECT_ROOT,
    SettingsError,
    connection_budget_problem,
    declared_keys,
    parse_settings,
    stack_file_values,
)
from sandbox.postgres import PASSWORD, start_postgres
from tests.support.api_containers import containers, peak_connections, role_connections
from tests.support.app_database import SCHEMA, SUBJECT, add_project, push_app_schema
from tests.support.pgbouncer import running_pgbouncer
from tests.support.moto import moto_server  # noqa: F401 - fixture (test_api_handler.bundle needs it)
from tests.support.postgres import Database, PostgresServer, pg_database, postgres  # noqa: F401 - fixtures
from tests.test_api_handler import AUDIENCE, ISSUER, JWKS_PATH, bundle, jwks, tokens  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

MAX_CONNECTIONS = 14
RESERVED_FOR_SUPERUSERS = 3  # PostgreSQL's default superuser_reserved_connections
ROLE_SLOTS = MAX_CONNECTIONS - RESERVED_FOR_SUPERUSERS
LIMIT = ROLE_SLOTS - 1  # the sampler's connection counts against the same slots
ROLE = "api"
# The handler's own bound on getting a connection (CONNECT_TIMEOUT_MS) plus node's start-up slack.
BUSY_BOUND_SECONDS = 5.0


def grant_role(conn: psycopg.Connection, schemas: list[str]) -> None:
    conn.execute(f"create role {ROLE} login password '{PASSWORD}' nosuperuser")
    for schema in schemas:
        conn.execute(f'grant usage on schema "{schema}" to {ROLE}')
        conn.execute(f'grant select on all tables in schema "{schema}" to {ROLE}')


@pytest.fixture(scope="module")
def tight_server() -> Iterator[PostgresServer]:
    """A server of its own with 14 connections, the app's tables in `app`, the `api` role."""
    server = start_postgres(max_connections=MAX_CONNECTIONS)
    try:
        database = server.create_database("tight")
        push_app_schema(database.url, SCHEMA)
        with database.connect() as conn:
            add_project(conn, SCHEMA, SUBJECT, "mine")
            grant_role(conn, [SCHEMA])
            # Every statement in the server's log, with the name of the prepared statement it ran.
            conn.execute("alter system set log_min_duration_statement = 0")
            conn.execute("alter system set log_line_prefix = 'user=%u '")
            conn.execute("select pg_reload_conf()")
        yield server
    finally:
        server.stop()


def role_url(server: PostgresServer, dbname: str = "tight") -> str:
    return f"postgres://{ROLE}:{PASSWORD}@127.0.0.1:{server.port}/{dbname}"


def request(tokens: dict, jwks) -> tuple[dict, dict]:
    event = {
        "rawPath": "/projects",
        "headers": {"authorization": f"Bearer {tokens['tokens']['valid']}"},
        "requestContext": {"http": {"method": "GET"}},
    }
    env = {"JWKS_URL": f"{jwks.url}{JWKS_PATH}", "JWT_ISSUER": ISSUER, "JWT_AUDIENCE": AUDIENCE, "DB_SCHEMA": SCHEMA}
    return event, env


@pytest.mark.parametrize(("functions", "pool_size"), [(10, 1), (5, 2)])
def test_concurrent_invocations_stay_within_the_budget_and_all_succeed(tight_server, bundle, tokens, jwks, functions, pool_size):
    # The settings accept this against the role's 10 connections, and no less than its worst case.
    budget = {"apiFunctionCount": 1, "apiReservedConcurrency": functions, "apiPoolSize": pool_size}
    assert connection_budget_problem({**budget, "databaseConnectionLimit": LIMIT}) is None
    assert connection_budget_problem({**budget, "databaseConnectionLimit": functions * pool_size - 1}) is not None

    event, env = request(tokens, jwks)
    env = {**env, "DATABASE_URL": role_url(tight_server), "DB_POOL_SIZE": str(pool_size)}
    with peak_connections(tight_server.url("tight"), ROLE) as seen, containers(bundle, count=functions, requests=4, env=env) as group:
        first = group.run(event)
        second = group.run(event)  # warm: the pools are reused, not grown
        with tight_server.connect("tight") as conn:
            held = role_connections(conn, ROLE)

    statuses = [r["status"] for batch in (first, second) for results in batch for r in results]
    assert statuses == [200] * (2 * functions * 4), group.stderr()
    assert all([p["name"] for p in r["body"]["projects"]] == ["mine"] for batch in (first, second) for rs in batch for r in rs)
    # Four requests at once per container fill each pool, and never more than the pool.
    assert held == functions * pool_size
    assert seen["peak"] == functions * pool_size <= LIMIT
    # On the wire: only unnamed statements (nothing a pooler's next client could trip over), and
    # schema-qualified tables.
    log = tight_server.log_file.read_text(errors="replace")
    executed = re.findall(rf"user={ROLE} .*execute ([^:]+): (.*)", log)
    assert executed and {name for name, _ in executed} == {"<unnamed>"}
    assert all('from "app"."projects"' in statement for _, statement in executed if "projects" in statement)


@contextlib.contextmanager
def holding(server: PostgresServer, count: int, url: str) -> Iterator[None]:
    held = [psycopg.connect(url, autocommit=True, connect_timeout=5) for _ in range(count)]
    try:
        yield
    finally:
        for conn in held:
            conn.close()


@pytest.mark.parametrize(
    ("superusers", "refusal"),
    [
        (0, "remaining connection slots are reserved"),  # every slot the role may use is taken
        (RESERVED_FOR_SUPERUSERS, "too many clients already"),  # the server is full
    ],
    ids=["role-slots-exhausted", "server-full"],
)
def test_an_exhausted_server_gets_503_with_retry_after_promptly(tight_server, bundle, tokens, jwks, superusers, refusal):
    event, env = request(tokens, jwks)
    env = {**env, "DATABASE_URL": role_url(tight_server), "DB_POOL_SIZE": "1"}
    with holding(tight_server, ROLE_SLOTS, role_url(tight_server)), holding(tight_server, superusers, tight_server.url("tight")):
        with containers(bundle, count=2, requests=1, env=env) as group:
            started = time.monotonic()
            results = group.run(event)
            elapsed = time.monotonic() - started
        log = group.stderr()

    for [result] in results:
        assert (result["status"], result["retryAfter"]) == (503, "2"), log
        assert result["body"]["error"] == "database_busy"
        assert result["ms"] < BUSY_BOUND_SECONDS * 1000
    assert elapsed < BUSY_BOUND_SECONDS
    assert refusal in log  # the server's own refusal is what the handler answered
    # Once connections are free again the same kind of request succeeds.
    with containers(bundle, count=1, requests=1, env=env) as group:
        [[result]] = group.run(event)
    assert result["status"] == 200


def test_a_database_that_never_answers_gets_503_within_the_bound(bundle, tokens, jwks):
    event, env = request(tokens, jwks)
    with socket.socket() as silent:  # accepts the TCP connection, never speaks the protocol
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {**env, "DATABASE_URL": f"postgres://{ROLE}:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/tight"}
        with containers(bundle, count=1, requests=1, env=env) as group:
            [[result]] = group.run(event)
    assert (result["status"], result["retryAfter"]) == (503, "2")
    assert result["ms"] < BUSY_BOUND_SECONDS * 1000


def test_other_database_errors_stay_500_not_503(tight_server, bundle, tokens, jwks):
    event, env = request(tokens, jwks)
    # A schema without the app's tables: "relation does not exist" is a fault, not a busy database.
    env = {**env, "DATABASE_URL": role_url(tight_server), "DB_SCHEMA": "no_such_schema"}
    with containers(bundle, count=1, requests=1, env=env) as group:
        [[result]] = group.run(event)
        log = group.stderr()
    assert (result["status"], result["retryAfter"]) == (500, None)
    assert "does not exist" in log


# --- through a real PgBouncer in transaction mode ---------------------------------------------------


@pytest.fixture
def two_stacks(pg_database: Database) -> Database:
    """Two stacks' schemas in one database, the same user owning a different project in each."""
    for schema, project in (("app_a", "project of a"), ("app_b", "project of b")):
        push_app_schema(pg_database.url, schema)
        with pg_database.connect() as conn:
            add_project(conn, schema, SUBJECT, project)
    with pg_database.connect() as conn:
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute(f"create role {ROLE} login password '{PASSWORD}' nosuperuser")
        for schema in ("app_a", "app_b"):
            conn.execute(f'grant usage on schema "{schema}" to {ROLE}')
            conn.execute(f'grant select on all tables in schema "{schema}" to {ROLE}')
        # Every server connection the pooler opens starts in app_b: a query that relied on the
        # search path (or a SET that another client left behind) would read app_b's rows.
        conn.execute(f'alter role {ROLE} in database "{pg_database.name}" set search_path to app_b, public')
    return pg_database


def test_through_pgbouncer_each_stack_reads_only_its_own_schema_on_shared_server_connections(
    postgres, two_stacks, bundle, tokens, jwks
):
    event, env = request(tokens, jwks)
    with running_pgbouncer(postgres, pool_size=1, users=(ROLE,)) as bouncer:
        url = bouncer.url(two_stacks.name, user=ROLE)
        with (
            containers(bundle, count=3, requests=3, env={**env, "DATABASE_URL": url, "DB_SCHEMA": "app_a", "DB_POOL_SIZE": "2"}) as a,
            containers(bundle, count=3, requests=3, env={**env, "DATABASE_URL": url, "DB_SCHEMA": "app_b", "DB_POOL_SIZE": "2"}) as b,
        ):
            # Both stacks at once, twice over: their transactions take turns on one server connection.
            runs: dict[str, list] = {}

            def run_stack(schema: str, group) -> None:
                runs[schema] = group.run(event) + group.run(event)

            threads = [threading.Thread(target=run_stack, args=item) for item in (("app_a", a), ("app_b", b))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with bouncer.admin() as admin:
                pools = admin.execute("SHOW POOLS").fetchall()
            # The poisoned search path is in effect: an unqualified name reads app_b's rows.
            with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
                unqualified = conn.execute("select name from projects").fetchall()
            with postgres.connect(two_stacks.name) as conn:
                server_side = conn.execute(
                    "select count(*) from pg_stat_activity where usename = %s and datname = %s", (ROLE, two_stacks.name)
                ).fetchone()[0]
        log = a.stderr() + b.stderr()

    for schema, batches in runs.items():
        for results in batches:
            for result in results:
                assert result["status"] == 200, log
                assert [p["name"] for p in result["body"]["projects"]] == [f"project of {schema[-1]}"]
    assert unqualified == [("project of b",)]
    # 12 client connections (6 containers x 2), one server connection for all of them.
    columns = ["database", "user", "cl_active", "cl_waiting"]
    [pool] = [dict(zip(columns, row[:4])) for row in pools if row[0] == two_stacks.name and row[1] == ROLE]
    assert pool["cl_active"] + pool["cl_waiting"] == 12
    assert server_side == 1
    assert "transaction" in [row[-1] for row in pools if row[0] == two_stacks.name]


def test_the_settings_and_the_migration_refuse_pgbouncer_as_the_direct_url(postgres, pg_database, tmp_path):
    with running_pgbouncer(postgres, pool_size=1) as bouncer:
        pooled = bouncer.url(pg_database.name)
        # It is a working pooler: a plain query goes through.
        with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as conn:
            assert conn.execute("select 1").fetchone() == (1,)

        values = {**stack_file_values("prod", "webstack"), "appDir": "tests/fixtures/app"}
        with pytest.raises(SettingsError) as refused:
            parse_settings(project="webstack", stack="prod", values=values, keys=declared_keys(),
                           secrets={"databaseUrl": pooled, "runtimeDatabaseUrl": pooled})  # fmt: skip
        [problem] = refused.value.problems
        assert problem.startswith("`databaseUrl` (DATABASE_URL): the database URL uses port 6543")
        assert "drizzle-kit push hangs" in problem and PASSWORD not in problem
        # The same pooler is what the runtime URL is for: accepted, no warning.
        accepted = parse_settings(project="webstack", stack="prod", values=values, keys=declared_keys(),
                                  secrets={"databaseUrl": pg_database.url, "runtimeDatabaseUrl": pooled})  # fmt: skip
        assert accepted.warnings == ()

        logins = bouncer.log.count("login attempt")
        migrate = subprocess.run(
            [sys.executable, "-m", "steps.migrate", "--app-dir", "examples/app", "--schema", "app", "--timeout", "60"],
            cwd=PROJECT_ROOT, env={**os.environ, "DATABASE_URL": pooled}, capture_output=True, text=True,
            timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        attempts_after = bouncer.log.count("login attempt")
    assert migrate.returncode == 1
    assert "port 6543" in migrate.stderr and "drizzle-kit push hangs" in migrate.stderr
    assert PASSWORD not in migrate.stdout + migrate.stderr
    # Refused before connecting: no login reached PgBouncer, no schema was created.
    assert logins >= 1 and attempts_after == logins
    with pg_database.connect() as conn:
        assert conn.execute("select count(*) from information_schema.schemata where schema_name = 'app'").fetchone() == (0,)
