"""workflow.preview_database against real PostgreSQL: what a pull request's database role can do.

The step runs as deploy.yml runs it (a process, prod's DATABASE_URL). Then the tests log in as the
preview role's login member, the way a PR's steps do with PREVIEW_DATABASE_URL: it creates, uses and
drops `app_preview_pr_7` (also through the real `steps.schema`), and every attempt on prod's
schema and on the audit table is refused by PostgreSQL itself (permission denied), even where
someone had granted them before the step ran.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from tests.support.postgres import PASSWORD, Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import result_of, run_step, steps_env  # noqa: F401 - fixture
from workflow.deploy_record import _create_table
from workflow.preview_database import Plan, plan_from_settings

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
    assert plan == Plan(role="webstack_preview", protected=("app", "webstack_audit"), preview_base="app_preview")
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
