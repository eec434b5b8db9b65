"""workflow.ddl_audit against real PostgreSQL: the event trigger records every DDL on prod's schema,
marks the pipeline's own (the real `steps.migrate` running the real drizzle-kit, the real
`steps.schema`) and leaves everything else flagged as out-of-band; installing it twice changes
nothing; without a superuser it installs nothing and says so.
"""

from __future__ import annotations

import secrets

import pytest
from psycopg import sql

from tests.support.postgres import PASSWORD, Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import REPO, result_of, steps_env  # noqa: F401 - fixture
from tests.support.steps_env import run_step as run
from workflow.ddl_audit import MIGRATION_APPLICATIONS, TRIGGERS, migration_pattern, watched_schemas

pytestmark = pytest.mark.usefixtures("steps_env")

APP = REPO / "examples" / "app"


def events(db: Database) -> list[dict]:
    with db.connect() as conn:
        cur = conn.execute(
            "SELECT event, command_tag, object_type, schema_name, object_identity, session_user_name,"
            " application_name, in_migration FROM webstack_audit.ddl_events ORDER BY id"
        )
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_prod_schema_is_watched_and_the_marks_are_the_pipelines():
    assert watched_schemas() == ("app",)
    assert MIGRATION_APPLICATIONS[:2] == ("webstack-migrate", "webstack-schema")
    assert migration_pattern() == r"^(webstack\-migrate|webstack\-schema|webstack\-preview\-database)([:\-]|$)"


@pytest.mark.slow
def test_the_trigger_records_ddl_and_tells_migrations_from_out_of_band(pg_database: Database):
    first = result_of(run("workflow.ddl_audit", "install", url=pg_database.url))
    assert first["state"] == "installed" and set(first["triggers"].values()) == {"enabled"}
    # Idempotent: installing again reports the same and leaves one trigger of each kind.
    assert result_of(run("workflow.ddl_audit", "install", url=pg_database.url)) == first
    with pg_database.connect() as conn:
        assert sorted(conn.execute("SELECT evtname, evtevent FROM pg_event_trigger").fetchall()) == sorted(
            (name, event) for name, event in TRIGGERS.items()
        )

    # The pipeline's own: the schema step, then drizzle-kit pushing the app's tables through steps.migrate.
    assert result_of(run("steps.schema", "create", "--schema", "app", url=pg_database.url))["changed"]
    migrated = result_of(
        run("steps.migrate", "--app-dir", str(APP), "--schema", "app", "--timeout", "180", url=pg_database.url)
    )
    assert migrated["outcome"] == "applied"
    pipeline = events(pg_database)
    assert pipeline[0]["command_tag"] == "CREATE SCHEMA" and pipeline[0]["object_identity"] == "app"
    assert pipeline[0]["application_name"] == "webstack-schema"
    tables = {e["object_identity"] for e in pipeline if e["command_tag"] == "CREATE TABLE"}
    assert {"app.users", "app.projects"} <= tables
    assert all(e["in_migration"] for e in pipeline), pipeline
    assert any(e["application_name"].startswith("webstack-migrate:app:") for e in pipeline)

    # Out-of-band: someone with a plain psql session, on the app's schema and elsewhere.
    with pg_database.connect(application_name="psql") as conn:
        conn.execute("CREATE TABLE app.shadow (id int)")
        conn.execute("ALTER TABLE app.shadow ADD COLUMN note text")
        conn.execute("DROP TABLE app.shadow")
        conn.execute("CREATE SCHEMA scratch")
        conn.execute("CREATE TABLE scratch.t (id int)")
    by_hand = events(pg_database)[len(pipeline) :]
    assert [(e["event"], e["command_tag"], e["object_type"], e["object_identity"]) for e in by_hand] == [
        ("ddl_command_end", "CREATE TABLE", "table", "app.shadow"),
        ("ddl_command_end", "ALTER TABLE", "table", "app.shadow"),
        ("sql_drop", "DROP TABLE", "table", "app.shadow"),
    ]
    assert {(e["session_user_name"], e["application_name"], e["in_migration"]) for e in by_hand} == {
        ("postgres", "psql", False)
    }


@pytest.mark.slow
def test_a_role_that_is_not_superuser_installs_nothing_and_says_so(pg_database: Database):
    role = f"deployer_{secrets.token_hex(4)}"
    with pg_database.server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD)))
    try:
        url = f"postgres://{role}:{PASSWORD}@127.0.0.1:{pg_database.server.port}/{pg_database.name}"
        proc = run("workflow.ddl_audit", "install", url=url)
        result = result_of(proc)
        assert result["state"] == "skipped" and set(result["triggers"].values()) == {"missing"}
        assert "needs a superuser" in proc.stderr
        with pg_database.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_event_trigger").fetchone()[0] == 0
    finally:
        pg_database.server.drop_database(pg_database.name)
        with pg_database.server.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.slow
def test_status_says_when_someone_disabled_the_trigger(pg_database: Database):
    result_of(run("workflow.ddl_audit", "install", url=pg_database.url))
    with pg_database.connect() as conn:
        conn.execute("ALTER EVENT TRIGGER webstack_ddl_audit_end DISABLE")
    status = result_of(run("workflow.ddl_audit", "status", url=pg_database.url))
    assert status["state"] == "off" and status["triggers"]["webstack_ddl_audit_end"] == "disabled"
    # The next deploy's install switches it back on.
    assert result_of(run("workflow.ddl_audit", "install", url=pg_database.url))["triggers"]["webstack_ddl_audit_end"] == "enabled"
