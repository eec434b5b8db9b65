"""steps.schema: create every stack's schema, drop only a PR stack's, idempotently.

Fast tests check the refusals before any connection (DATABASE_URL points at a closed port, so a
connection attempt would show up as a different error). Slow tests run against PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.names import PR_SCHEMA, pr_schema
from tests.support.http_stub import webhook  # noqa: F401 - fixture
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
CLOSED_PORT_URL = "postgres://u:not-a-real-password@127.0.0.1:1/x"


def run_schema(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.schema", *args],
        cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )


def failure_line(proc: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in proc.stderr.splitlines() if line.startswith("FAILED schema:"))


@pytest.mark.parametrize("name", ["app_preview_pr_7", "app_pr_12", "a_pr_1", "x1_pr_300"])
def test_pr_schema_names_are_droppable(name):
    assert PR_SCHEMA.fullmatch(name)
    base, _, number = name.rpartition("_pr_")
    assert pr_schema(base, int(number)) == name  # the program derives exactly these


@pytest.mark.parametrize("name", ["app", "app_preview", "app_pr_0", "app_pr_07", "app_pr_", "pr_7", "_pr_1", "app_pr_7x", "app_pr_7\n"])
def test_other_names_are_not_droppable(name):
    assert not PR_SCHEMA.fullmatch(name)


@pytest.mark.parametrize("name", ["app", "app_preview", "app_pr_07"])
def test_drop_refuses_protected_schemas_without_connecting(name, webhook):
    proc = run_schema("drop", "--schema", name, env={"DATABASE_URL": CLOSED_PORT_URL, "ALERT_WEBHOOK_URL": webhook.url})
    assert proc.returncode == 1
    assert f"refusing to drop schema {name!r}: only the schema of a PR stack" in failure_line(proc)
    assert "not retrying (permanent)" in proc.stderr
    assert webhook.requests[0].json["text"].startswith("[CRITICAL] Deploy step schema failed")


@pytest.mark.parametrize("action", ["create", "drop"])
@pytest.mark.parametrize("name", ["App_pr_7", "app-pr-7", 'x"; drop schema app; --_pr_7', "9app_pr_7", "a" * 60 + "_pr_7"])
def test_invalid_names_are_refused_before_connecting(action, name):
    proc = run_schema(action, "--schema", name, env={"DATABASE_URL": CLOSED_PORT_URL})
    assert proc.returncode == 1
    assert "is not a plain PostgreSQL identifier" in failure_line(proc)


def test_database_url_only_from_the_environment():
    proc = run_schema("create", "--schema", "app")
    assert proc.returncode == 1 and "DATABASE_URL is not set" in failure_line(proc)
    assert run_schema("create", "--schema", "app", "--database-url", CLOSED_PORT_URL).returncode == 2


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def schemas(db: Database) -> set[str]:
    with db.connect() as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'app%'")}


@pytest.mark.slow
def test_create_is_idempotent(pg_database: Database):
    env = {"DATABASE_URL": pg_database.url}
    assert result_of(run_schema("create", "--schema", "app_preview_pr_7", env=env)) == {
        "schema": "app_preview_pr_7", "action": "create", "changed": True}
    assert result_of(run_schema("create", "--schema", "app_preview_pr_7", env=env))["changed"] is False
    assert schemas(pg_database) == {"app_preview_pr_7"}


@pytest.mark.slow
def test_drop_of_a_preview_schema_twice(pg_database: Database):
    env = {"DATABASE_URL": pg_database.url}
    for name in ("app", "app_preview_pr_7"):
        result_of(run_schema("create", "--schema", name, env=env))
    with pg_database.connect() as conn:
        conn.execute("CREATE TABLE app_preview_pr_7.t (id int); INSERT INTO app_preview_pr_7.t VALUES (1)")
        conn.execute("CREATE TABLE app.t (id int); INSERT INTO app.t VALUES (1)")
    assert result_of(run_schema("drop", "--schema", "app_preview_pr_7", env=env)) == {
        "schema": "app_preview_pr_7", "action": "drop", "changed": True}
    assert result_of(run_schema("drop", "--schema", "app_preview_pr_7", env=env))["changed"] is False
    assert schemas(pg_database) == {"app"}
    refused = run_schema("drop", "--schema", "app", env=env)
    assert refused.returncode == 1 and "refusing to drop schema 'app'" in failure_line(refused)
    with pg_database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM app.t").fetchone()[0] == 1


@pytest.mark.slow
def test_a_replaced_schema_command_leaves_the_live_schema_and_the_last_one_drops_it(pg_database: Database):
    """pulumi-command replaces create-before-delete: the new Command's create runs, then the old
    one's delete. With --claim/--claimed the old delete finds the schema claimed by the new
    owner and drops nothing; an update (the same resource) keeps its owner."""
    env = {"DATABASE_URL": pg_database.url}
    old = result_of(run_schema("create", "--schema", "app_preview_pr_7", "--claim", env=env))
    with pg_database.connect() as conn:
        conn.execute("CREATE TABLE app_preview_pr_7.t (id int); INSERT INTO app_preview_pr_7.t VALUES (1)")
    stdout = {"PULUMI_COMMAND_STDOUT": json.dumps(old)}
    updated = result_of(run_schema("create", "--schema", "app_preview_pr_7", "--claim", env={**env, **stdout}))
    assert updated["owner"] == old["owner"] and updated["changed"] is False
    new = result_of(run_schema("create", "--schema", "app_preview_pr_7", "--claim", env=env))  # the replacement
    assert new["owner"] != old["owner"]

    replaced = run_schema("drop", "--schema", "app_preview_pr_7", "--claimed", env={**env, **stdout})
    assert result_of(replaced) == {"schema": "app_preview_pr_7", "action": "drop", "changed": False, "owned_by": new["owner"]}
    assert "this one was replaced; not dropped" in replaced.stderr
    with pg_database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM app_preview_pr_7.t").fetchone()[0] == 1

    destroyed = run_schema("drop", "--schema", "app_preview_pr_7", "--claimed", env={**env, "PULUMI_COMMAND_STDOUT": json.dumps(new)})
    assert result_of(destroyed)["changed"] is True
    assert "app_preview_pr_7" not in schemas(pg_database)


@pytest.mark.slow
def test_missing_database_fails_without_retrying(pg_database: Database):
    url = pg_database.server.url("no_such_db")
    proc = run_schema("create", "--schema", "app", env={"DATABASE_URL": url})
    assert proc.returncode == 1
    assert 'database "no_such_db" does not exist' in failure_line(proc)
    assert "not retrying (permanent)" in proc.stderr
