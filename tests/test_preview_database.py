"""workflow.preview_database against real PostgreSQL: what a pull request's database role can do.

The step runs as deploy.yml runs it (a process, prod's DATABASE_URL). Then the tests log in as the
preview role's login member, the way a PR's steps do with PREVIEW_DATABASE_URL: it creates, uses and
drops `app_preview_pr_7` (also through the real `steps.schema`), and every attempt on prod's
schema and on the audit table is refused by PostgreSQL itself (permission denied), even where
someone had granted them before the step ran.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from tests.support.http_stub import webhook  # noqa: F401 - fixture
from tests.support.postgres import PASSWORD, Database, pg_database, postgres, start_postgres  # noqa: F401 - fixtures
from tests.support.steps_env import REPO, result_of, run_step, steps_env  # noqa: F401 - fixture
from workflow.deploy_record import _create_table
from workflow.preview_database import Limits, Plan, plan_from_settings

pytestmark = pytest.mark.usefixtures("steps_env")



class Roles:
    """Uniquely named roles for one test (roles are cluster-wide), dropped afterwards."""

    def __init__(self, db: Database):
        self.db = db
        suffix = secrets.token_hex(4)
        self.group = f"preview_{suffix}"
        self.login = f"preview_{suffix}_ci"
        self.prod = f"prod_{suffix}"
        self.created: list[str] = []

    def create(self, name: str, attributes: str) -> None:
        with self.db.server.connect() as conn:
            conn.execute(sql.SQL(f"CREATE ROLE {{}} {attributes} PASSWORD {{}}").format(sql.Identifier(name), sql.Literal(PASSWORD)))
        self.created.append(name)

    def url(self, role: str) -> str:
        return f"postgres://{role}:{PASSWORD}@127.0.0.1:{self.db.server.port}/{self.db.name}"

    def connect(self, role: str) -> psycopg.Connection:
        return psycopg.connect(self.url(role), autocommit=True, connect_timeout=10)


@pytest.fixture
def roles(pg_database: Database) -> Iterator[Roles]:
    made = Roles(pg_database)
    yield made
    pg_database.server.terminate_sessions(pg_database.name)
    with pg_database.connect() as conn:
        for role in [*reversed(made.created), made.group]:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    pg_database.server.drop_database(pg_database.name)
    with pg_database.server.connect() as conn:
        for role in [*reversed(made.created), made.group]:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def prod_data(conn: psycopg.Connection) -> None:
    """prod's schema with a row, the audit table with a row, and grants someone made by hand."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS app")
    conn.execute("CREATE TABLE app.users (id int PRIMARY KEY, email text)")
    conn.execute("INSERT INTO app.users VALUES (1, 'a@example.com')")
    with conn.transaction():
        _create_table(conn)
    conn.execute(
        "INSERT INTO webstack_audit.deploys (stack, outcome, actor, commit_sha, ref, repository, run_id, run_attempt, outputs)"
        " VALUES ('prod', 'success', 'octocat', 'abc', 'refs/heads/main', 'org/repo', '1', 1, '{}')"
    )
    # What the step must take back: grants to PUBLIC on both, as a careless hand might have made.
    for schema in ("app", "webstack_audit"):
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO PUBLIC").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {} TO PUBLIC").format(sql.Identifier(schema)))


def denied(conn: psycopg.Connection, statement: str) -> str:
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        conn.execute(statement)
    return str(caught.value)


def test_the_plan_comes_from_the_stack_files():
    plan = plan_from_settings()
    assert plan == Plan(
        role="webstack_preview", protected=("app", "webstack_audit"), preview_base="app_preview",
        limits=Limits(connections=24, statement_timeout=120), prod_connections=40,
    )
    assert plan.limits.settings == {"statement_timeout": "120s", "idle_in_transaction_session_timeout": "60s"}
    assert plan.pattern == "^app_preview_pr_[1-9][0-9]{0,6}$"


@pytest.mark.slow
def test_the_preview_role_owns_its_schemas_and_cannot_reach_prods(pg_database: Database, roles: Roles):
    with pg_database.connect() as conn:
        prod_data(conn)
    roles.create(roles.group, "NOLOGIN")  # as an operator would, before the first deploy ran
    roles.create(roles.login, f"LOGIN IN ROLE {roles.group}")
    with pg_database.connect() as conn:
        conn.execute(sql.SQL("GRANT SELECT ON app.users TO {}").format(sql.Identifier(roles.login)))

    result = result_of(run_step("workflow.preview_database", "--role", roles.group, url=pg_database.url))
    assert result["role"] == roles.group and result["members"] == [roles.login]
    assert result["protected"] == ["app", "webstack_audit"]
    assert result["naming_rule"] == "installed" and result["stray"] == []
    # Idempotent: a second deploy changes nothing and reports the same.
    assert result_of(run_step("workflow.preview_database", "--role", roles.group, url=pg_database.url)) == result

    preview_url = roles.url(roles.login)
    # The preview's own schema, through the real step and in plain SQL: create, use, drop.
    assert result_of(run_step("steps.schema", "create", "--schema", "app_preview_pr_7", url=preview_url))["changed"]
    with roles.connect(roles.login) as conn:
        conn.execute("CREATE TABLE app_preview_pr_7.items (id int)")
        conn.execute("INSERT INTO app_preview_pr_7.items VALUES (7)")
        assert conn.execute("SELECT id FROM app_preview_pr_7.items").fetchall() == [(7,)]
    assert result_of(run_step("steps.schema", "drop", "--schema", "app_preview_pr_7", url=preview_url))["changed"]

    with roles.connect(roles.login) as conn:
        # prod's schema: no reading, writing, creating, renaming or dropping.
        assert "permission denied for schema app" in denied(conn, "SELECT * FROM app.users")
        denied(conn, "INSERT INTO app.users VALUES (2, 'x')")
        denied(conn, "CREATE TABLE app.planted (id int)")
        assert "must be owner of schema app" in denied(conn, "DROP SCHEMA app CASCADE")
        denied(conn, "ALTER SCHEMA app RENAME TO app_old")
        # The audit table: no forged row, no erased one, not even a look.
        assert "permission denied for schema webstack_audit" in denied(
            conn,
            "INSERT INTO webstack_audit.deploys (stack, outcome, actor, commit_sha, ref, repository, run_id, run_attempt, outputs)"
            " VALUES ('prod', 'success', 'mallory', 'x', 'refs/heads/main', 'org/repo', '2', 1, '{}')",
        )
        denied(conn, "DELETE FROM webstack_audit.deploys")
        denied(conn, "SELECT count(*) FROM webstack_audit.deploys")
        denied(conn, "DROP SCHEMA webstack_audit CASCADE")
        # The naming rule: only <base>_pr_<N>, also by renaming.
        assert "only schemas named app_preview_pr_<N>" in denied(conn, "CREATE SCHEMA scratch")
        conn.execute("CREATE SCHEMA app_preview_pr_8")
        denied(conn, "ALTER SCHEMA app_preview_pr_8 RENAME TO webstack_audit_copy")
        conn.execute("DROP SCHEMA app_preview_pr_8")

    with pg_database.connect() as conn:  # prod's data is untouched, and prod still reads it
        assert conn.execute("SELECT count(*) FROM app.users").fetchone()[0] == 1
        assert conn.execute("SELECT actor FROM webstack_audit.deploys").fetchall() == [("octocat",)]
        conn.execute("CREATE SCHEMA prod_scratch")  # the rule holds previews only
        conn.execute("DROP SCHEMA prod_scratch")


@pytest.mark.slow
def test_a_deploy_role_that_is_no_superuser_manages_the_role_too(pg_database: Database, roles: Roles):
    # Managed PostgreSQL (Supabase) gives the deploy a CREATEROLE owner, not a superuser.
    roles.create(roles.prod, "LOGIN CREATEROLE")
    with pg_database.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(pg_database.name), sql.Identifier(roles.prod)))
    with roles.connect(roles.prod) as conn:
        prod_data(conn)
    proc = run_step("workflow.preview_database", "--role", roles.group, url=roles.url(roles.prod))
    result = result_of(proc)
    assert result["naming_rule"] == "skipped" and "needs a superuser" in proc.stderr
    with roles.connect(roles.prod) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(roles.login), sql.Literal(PASSWORD), sql.Identifier(roles.group)))
    roles.created.append(roles.login)
    with roles.connect(roles.login) as conn:
        conn.execute("CREATE SCHEMA app_preview_pr_7")
        conn.execute("DROP SCHEMA app_preview_pr_7")
        denied(conn, "SELECT * FROM app.users")
        denied(conn, "DELETE FROM webstack_audit.deploys")
        conn.execute("CREATE SCHEMA scratch")  # no rule without a superuser: reported instead
    proc = run_step("workflow.preview_database", "--role", roles.group, url=roles.url(roles.prod))
    assert result_of(proc)["stray"] == ["scratch"]
    assert "outside <app_preview>_pr_<N>: 'scratch'" in proc.stderr


@pytest.mark.slow
def test_prods_schema_claimed_by_a_preview_is_refused(pg_database: Database, roles: Roles):
    # Before prod's first deploy: a preview (CREATE on the database) names prod's schema first.
    roles.create(roles.group, "NOLOGIN")
    roles.create(roles.login, f"LOGIN IN ROLE {roles.group}")
    with pg_database.connect() as conn:
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(pg_database.name), sql.Identifier(roles.group)))
    with roles.connect(roles.login) as conn:
        conn.execute("CREATE SCHEMA app")
    proc = run_step("workflow.preview_database", "--role", roles.group, url=pg_database.url)
    assert proc.returncode == 1
    assert f"schema 'app' is owned by '{roles.login}', not by this deploy's role" in proc.stderr


@pytest.mark.slow
def test_a_preview_login_with_a_dangerous_attribute_is_refused(pg_database: Database, roles: Roles):
    roles.create(roles.group, "NOLOGIN")
    roles.create(roles.login, f"LOGIN CREATEROLE IN ROLE {roles.group}")
    proc = run_step("workflow.preview_database", "--role", roles.group, url=pg_database.url)
    assert proc.returncode == 1
    assert f"role '{roles.login}' has createrole" in proc.stderr
    with pg_database.connect() as conn:  # one transaction: nothing of the failed run is kept
        assert conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (roles.group,)
        ).fetchone()[0] is False


# --- a pull request's session against prod's deploy (issue 27 §3) -----------------------------

# The advisory keys earlier versions serialized prod's steps with: constants (and a hash of prod's
# schema name) that any role could take and hold.
OLD_ADVISORY_KEYS = (0x5EB5_0001, 0x5EB5_0DD1, 0x5EB5_7AC4)


def deploy(url: str, *args: str, timeout: float = 60, **env: str):
    """workflow.preview_database as deploy.yml runs it; a run that hangs fails the test after `timeout`."""
    return subprocess.run(
        [sys.executable, "-m", "workflow.preview_database", *args],
        cwd=REPO, env={**os.environ, "DATABASE_URL": url, **env}, capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.slow
def test_a_pr_session_holding_every_key_it_can_does_not_stall_prods_steps(pg_database: Database, roles: Roles):
    from steps.migration_lock import holding_migration_lock

    with pg_database.connect() as conn:
        prod_data(conn)
    roles.create(roles.group, "NOLOGIN")
    roles.create(roles.login, f"LOGIN IN ROLE {roles.group}")
    result_of(deploy(pg_database.url, "--role", roles.group))

    with roles.connect(roles.login) as pr, roles.connect(roles.login) as pr_tx:
        # Every advisory key prod ever used, and the key of a migration of prod's schema.
        for key in OLD_ADVISORY_KEYS:
            pr.execute("SELECT pg_advisory_lock(%s)", (key,))
        pr.execute("SELECT pg_advisory_lock(hashtextextended('webstack-migrate:app', 0))")
        # prod's lock table: a preview cannot lock it, not a row of it, not the whole table ...
        assert "permission denied for schema webstack_audit" in denied(pr, "SELECT * FROM webstack_audit.locks FOR UPDATE")
        pr.execute("BEGIN")
        denied(pr, "LOCK TABLE webstack_audit.locks IN ACCESS EXCLUSIVE MODE")
        pr.execute("ROLLBACK")
        # ... and the weak lock it can take by oid (pg_relation_size opens the table) conflicts
        # with nothing prod takes.
        pr_tx.execute("BEGIN")
        pr_tx.execute("SELECT pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " WHERE n.nspname = 'webstack_audit' AND c.relname = 'locks'")

        started = time.monotonic()
        proc = deploy(pg_database.url, "--role", roles.group, "--lock-wait", "10", timeout=30)
        assert proc.returncode == 0, proc.stderr[-2000:]
        with psycopg.connect(pg_database.url, autocommit=True) as conn:
            with holding_migration_lock(conn, pg_database.url, "app", time.monotonic() + 10, 10):
                held = conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE a.application_name = 'webstack-migrate-lock:app' AND l.locktype = 'relation' AND l.granted"
                    " AND l.relation = 'webstack_audit.locks'::regclass AND l.mode = 'RowShareLock'"
                ).fetchone()[0]
        assert held == 1, "prod's migration lock is a row lock in webstack_audit.locks"
        assert time.monotonic() - started < 20
        pr_tx.execute("ROLLBACK")


@pytest.mark.slow
def test_a_second_prod_run_waits_a_bounded_time_then_fails_and_alerts(pg_database: Database, roles: Roles, webhook):
    roles.create(roles.group, "NOLOGIN")
    result_of(deploy(pg_database.url, "--role", roles.group))
    with psycopg.connect(pg_database.url, autocommit=True, application_name="webstack-preview-database") as held:
        held.execute("BEGIN")
        held.execute("SELECT 1 FROM webstack_audit.locks WHERE name = 'preview-database' FOR UPDATE")
        holder = held.info.backend_pid
        started = time.monotonic()
        proc = deploy(pg_database.url, "--role", roles.group, "--lock-wait", "2", ALERT_WEBHOOK_URL=webhook.url + "/hook")
        took = time.monotonic() - started
        held.execute("ROLLBACK")
    assert proc.returncode == 1
    assert f"waited 2s for the lock 'preview-database' (webstack_audit.locks), held by pid {holder} (webstack-preview-database)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert took < 15, "one bounded wait, not retried"
    [alert] = webhook.requests
    assert alert.json["attachments"][0]["title"] == "Deploy step preview-database failed"
    assert "waited 2s for the lock" in alert.json["text"]


def _setting(conn: psycopg.Connection, name: str) -> str:
    return conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]


@pytest.mark.slow
def test_a_pr_cannot_take_the_connections_prod_needs():
    # A managed database: prod's role is no superuser (no reserved slots) and the server is small.
    server = start_postgres(max_connections=40)
    try:
        db = server.create_database()
        roles = Roles(db)
        roles.create(roles.prod, "LOGIN CREATEROLE")
        with db.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db.name), sql.Identifier(roles.prod)))
        roles.create(roles.group, "NOLOGIN")
        roles.create(roles.login, f"LOGIN IN ROLE {roles.group}")
        with roles.connect(roles.prod) as conn:
            prod_data(conn)
        first = deploy(roles.url(roles.prod), "--role", roles.group)
        result_of(first)

        # The PR's login opens all it can ...
        opened: list[psycopg.Connection] = []
        refusal = ""
        try:
            for _ in range(40):
                try:
                    opened.append(roles.connect(roles.login))
                except psycopg.OperationalError as exc:
                    refusal = str(exc)
                    break
            # ... and prod still connects and deploys while the PR holds every one of them ...
            result = result_of(deploy(roles.url(roles.prod), "--role", roles.group))
            # ... because the server stopped the PR at its limit.
            limit = result["limits"]["connections"]
            assert limit == 20 + 4  # Pulumi.preview.yaml's databaseConnectionLimit + the deploy steps'
            assert len(opened) == limit and "too many connections for role" in refusal
            assert "leaves prod 13, under its databaseConnectionLimit 40" in first.stderr
            # The PR's sessions run under the timeouts (a PR's code may SET others for itself:
            # what binds it is the connection limit).
            assert _setting(opened[0], "statement_timeout") == "2min"
            assert _setting(opened[0], "idle_in_transaction_session_timeout") == "1min"
            # The member changes its own defaults, also per database: the next deploy resets them.
            opened[0].execute("ALTER ROLE CURRENT_USER SET statement_timeout = 0")
            opened[0].execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET idle_in_transaction_session_timeout = 0")
                              .format(sql.Identifier(db.name)))
        finally:
            for conn in opened:
                conn.close()
        result_of(deploy(roles.url(roles.prod), "--role", roles.group))
        with roles.connect(roles.login) as conn:
            assert _setting(conn, "statement_timeout") == "2min"
            assert _setting(conn, "idle_in_transaction_session_timeout") == "1min"
    finally:
        server.stop()


# --- shadowing the catalog (issue 27 §4) --------------------------------------------------------

# What a preview may do in a session of its own to make the naming rule say yes: each is set up,
# then `CREATE SCHEMA` of a name outside the rule must still be refused.
SHADOWING = {
    # PostgreSQL searches the session's temporary schema first for tables unless the path names it.
    "a temporary pg_roles with rolsuper": [
        "CREATE TEMP TABLE pg_roles AS SELECT rolname, true AS rolsuper FROM pg_catalog.pg_roles",
    ],
    # A schema of its own named before pg_catalog on its path, holding look-alikes of the catalog's.
    "a pg_has_role that says no": [
        "CREATE FUNCTION app_preview_pr_7.pg_has_role(name, text, text) RETURNS boolean"
        " LANGUAGE sql AS 'SELECT false'",
        "SET search_path = app_preview_pr_7, pg_catalog",
    ],
    "a pg_has_role of the exact signature": [
        "CREATE FUNCTION app_preview_pr_7.pg_has_role(name, name, text) RETURNS boolean"
        " LANGUAGE sql AS 'SELECT false'",
        "SET search_path = app_preview_pr_7, pg_catalog",
    ],
    "an empty pg_event_trigger_ddl_commands": [
        "CREATE FUNCTION app_preview_pr_7.pg_event_trigger_ddl_commands(OUT object_type text, OUT object_identity text)"
        " RETURNS SETOF record LANGUAGE sql AS 'SELECT NULL::text, NULL::text WHERE false'",
        "SET search_path = app_preview_pr_7, pg_catalog",
    ],
    "a !~ operator that never matches": [
        "CREATE FUNCTION app_preview_pr_7.never(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false'",
        "CREATE OPERATOR app_preview_pr_7.!~ (LEFTARG = text, RIGHTARG = text, FUNCTION = app_preview_pr_7.never)",
        "SET search_path = app_preview_pr_7, pg_catalog",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(SHADOWING))
def test_shadowing_the_catalog_does_not_bypass_the_naming_rule(pg_database: Database, roles: Roles, attack: str):
    roles.create(roles.group, "NOLOGIN")
    roles.create(roles.login, f"LOGIN IN ROLE {roles.group}")
    assert result_of(deploy(pg_database.url, "--role", roles.group))["naming_rule"] == "installed"
    with roles.connect(roles.login) as conn:
        conn.execute("CREATE SCHEMA app_preview_pr_7")
        for statement in SHADOWING[attack]:
            conn.execute(statement)
        assert "only schemas named app_preview_pr_<N>" in denied(conn, "CREATE SCHEMA scratch")
        assert "only schemas named app_preview_pr_<N>" in denied(conn, "ALTER SCHEMA app_preview_pr_7 RENAME TO scratch")
    with pg_database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'scratch'").fetchone()[0] == 0


@pytest.mark.slow
def test_functions_a_preview_plants_never_run_in_prods_session(pg_database: Database, roles: Roles):
    # Managed PostgreSQL: no superuser, so no naming rule; a preview may name a schema like prod's
    # role, which prod's default search_path ("$user", public) searches. It plants overloads that
    # match prod's calls better than the catalog's, each recording who ran it.
    roles.create(roles.prod, "LOGIN CREATEROLE")
    with pg_database.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(pg_database.name), sql.Identifier(roles.prod)))
    with roles.connect(roles.prod) as conn:
        prod_data(conn)
    result_of(deploy(roles.url(roles.prod), "--role", roles.group))
    with roles.connect(roles.prod) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(roles.login), sql.Literal(PASSWORD), sql.Identifier(roles.group)))
    roles.created.append(roles.login)
    planted = sql.Identifier(roles.prod)
    with roles.connect(roles.login) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(planted))
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO PUBLIC").format(planted))
        conn.execute(sql.SQL("CREATE TABLE {}.ran_as (who name)").format(planted))
        conn.execute(sql.SQL("GRANT INSERT ON {}.ran_as TO PUBLIC").format(planted))
        for signature, real in (
            ("pg_has_role(name, text, text)", "pg_catalog.pg_has_role($1, $2::name, $3)"),
            ("has_schema_privilege(name, text, text)", "pg_catalog.has_schema_privilege($1, $2, $3)"),
            ("has_table_privilege(name, text, text)", "pg_catalog.has_table_privilege($1, $2, $3)"),
            ("hashtextextended(text, integer)", "pg_catalog.hashtextextended($1, $2)"),
        ):
            returns = "bigint" if signature.startswith("hash") else "boolean"
            conn.execute(sql.SQL(
                "CREATE FUNCTION {schema}." + signature + " RETURNS " + returns + " LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO {table} VALUES (current_user); RETURN " + real + "; END $$"
            ).format(schema=planted, table=sql.Identifier(roles.prod, "ran_as")))
    # prod's deploy steps: the preview role's step, a migration lock on prod's schema, a deploy record.
    proc = deploy(roles.url(roles.prod), "--role", roles.group)
    assert result_of(proc)["stray"] == [roles.prod]
    from steps.migration_lock import holding_migration_lock
    from workflow.deploy_record import append

    with psycopg.connect(roles.url(roles.prod), autocommit=True) as conn, holding_migration_lock(
        conn, roles.url(roles.prod), "app_preview_pr_3", time.monotonic() + 10, 10
    ):
        pass
    append(roles.url(roles.prod), {
        "stack": "prod", "outcome": "success", "actor": "octocat", "commit_sha": "abc", "ref": "refs/heads/main",
        "repository": "org/repo", "run_id": "9", "run_attempt": 1, "run_url": "", "function_name": "f",
        "stable_version": "1", "api_url": "", "site_url": "", "outputs": {},
    })
    with roles.connect(roles.login) as conn:
        ran = conn.execute(sql.SQL("SELECT DISTINCT who FROM {}").format(sql.Identifier(roles.prod, "ran_as"))).fetchall()
    assert ran == [], f"a preview's function ran in prod's session as {ran}"
