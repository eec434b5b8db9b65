"""steps.migrate: drizzle-kit push decided by its output and by the catalog, never by its exit code.

Fast tests: argument checks, the pooler refusal, output classification on output recorded from
drizzle-kit 0.31.11, type normalization and the catalog check. Slow tests run the step as a real
process against a throwaway PostgreSQL (tests.support.postgres) and the real drizzle-kit of
examples/app; schema-changing tests edit a copy of the app whose node_modules is a symlink.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from steps.catalog import (
    SchemaState,
    describe_ambiguity,
    foreign_key_churn_warning,
    long_foreign_key_names,
    normalize_type,
    recreated_foreign_keys,
    verify_state,
)
from steps.drizzle_output import classify_push, waits_for_an_answer
from steps.migrate import data_loss_digest, drizzle_kit_version_note
from steps.migration_lock import TIMEOUT_ALERT
from tests.support.http_stub import webhook  # noqa: F401 - fixture
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("steps_env")

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "app"
DEFINE = Path("packages/shared-schemas/src/define.ts")

# --- output recorded from drizzle-kit 0.31.11 (stdin /dev/null, stdout a pipe) ---------------

PULL = (
    "Reading config file '/work/main/examples/app/packages/shared-schemas/drizzle.config.ts'\n"
    "Using 'pg' driver for database querying\n"
    "[⣷] Pulling schema from database...\n"
    "\x1b[2K\x1b[1G[✓] Pulling schema from database...\n"
)
APPLIED = PULL + "[✓] Changes applied\n"
NO_CHANGES = PULL + "[i] No changes detected\n"
TTY_ERROR = (
    "Error: Interactive prompts require a TTY terminal (process.stdin.isTTY or process.stdout.isTTY "
    "is false). This can happen when running in CI, piped input, or non-interactive shells.\n"
    "    at render10 (/app/node_modules/drizzle-kit/bin.cjs:1450:31)\n"
)
RENAME = PULL + TTY_ERROR + (
    "    at promptColumnsConflicts (/app/node_modules/drizzle-kit/bin.cjs:32711:65)\n"
    "    at columnsResolver (/app/node_modules/drizzle-kit/bin.cjs:32146:28)\n"
    "    at applyPgSnapshotsDiff (/app/node_modules/drizzle-kit/bin.cjs:28228:73)\n"
)
DATA_LOSS = PULL + (
    " Warning  Found data-loss statements:\n"
    "· You're about to delete email column in users table with 1 items\n"
    "\n"
    "THIS ACTION WILL CAUSE DATA LOSS AND CANNOT BE REVERTED\n"
    "\n"
    "Do you still want to push changes?\n"
) + TTY_ERROR + "    at pgPush (/app/node_modules/drizzle-kit/bin.cjs:82756:70)\n"
SQL_ERROR = PULL + (
    'error: could not create unique index "users_email_uq"\n'
    "    at /app/node_modules/pg-pool/index.js:45:11\n"
    "    at async pgPush (/app/node_modules/drizzle-kit/bin.cjs:82768:13) {\n"
    "  length: 186,\n"
    "  severity: 'ERROR',\n"
    "  code: '23505',\n"
    "  detail: 'Key (email)=(dup@x) is duplicated.',\n"
    "  hint: undefined,\n"
    "  schema: 'app_pr_7',\n"
    "  table: 'users',\n"
    "  column: undefined,\n"
    "  constraint: 'users_email_uq',\n"
    "  routine: 'comparetup_index_btree'\n"
    "}\n"
)
ALREADY_EXISTS = PULL + "error: relation \"users\" already exists\n  code: '42P07',\n"
CONNECTION_FAILED = (
    "Reading config file '/app/packages/shared-schemas/drizzle.config.ts'\n"
    "Using 'pg' driver for database querying\n"
    "[⣷] Pulling schema from database...\n"
    "\x1b[2K\x1b[1G[⣷] Pulling schema from database...\n"
)

# --- output recorded from drizzle-kit 0.30.6 on postgres.js (tests/fixtures/old-drizzle-kit) ----------

OLD_PULL = (
    "Reading config file '/tmp/old/packages/shared-schemas/drizzle.config.ts'\n"
    "Using 'postgres' driver for database querying\n"
    "[⣷] Pulling schema from database...\n"
    "\x1b[2K\x1b[1G[✓] Pulling schema from database...\n"
)
OLD_RENAME = OLD_PULL + (
    "\x1b[?25l\n"
    "Is heading column in notes table created or renamed from another column?\n"
    "❯ + heading         create column\n"
    "  ~ title › heading rename column"
)
OLD_DATA_LOSS = OLD_PULL + (
    " Warning  Found data-loss statements:\n"
    "· You're about to delete body column in notes table with 1 items\n"
    "\n"
    "THIS ACTION WILL CAUSE DATA LOSS AND CANNOT BE REVERTED\n"
    "\n"
    "Do you still want to push changes?\n"
    "\x1b[?25l❯ No, abort\n"
    "  Yes, I want to remove 1 column,"
)
POSTGRES_JS_STACK = (
    "    at ErrorResponse (file:///tmp/old/node_modules/postgres/src/connection.js:794:26)\n"
    "    at handle (file:///tmp/old/node_modules/postgres/src/connection.js:480:6)\n"
    "    at TCP.onStreamRead (node:internal/stream_base_commons:191:23) {\n"
    "  severity_local: 'ERROR',\n"
    "  severity: 'ERROR',\n"
)
POSTGRES_JS_ERROR = OLD_PULL + 'PostgresError: could not create unique index "notes_title_uq"\n' + POSTGRES_JS_STACK + (
    "  code: '23505',\n"
    "  detail: 'Key (title)=(a) is duplicated.',\n"
    "  schema_name: 'app',\n"
    "  table_name: 'notes',\n"
    "  constraint_name: 'notes_title_uq',\n"
    "  file: 'tuplesort.c',\n"
    "  line: '4423',\n"
    "  routine: 'comparetup_index_btree'\n"
    "}\n"
)
DROP_SCHEMA = OLD_PULL + "PostgresError: cannot drop schema app because other objects depend on it\n" + POSTGRES_JS_STACK + (
    "  code: '2BP01',\n"
    "  detail: 'table app.notes depends on schema app',\n"
    "  hint: 'Use DROP ... CASCADE to drop the dependent objects too.',\n"
    "}\n"
)
CONFIG_EXIT = "Reading config file '/app/packages/shared-schemas/drizzle.config.ts'\ncould not read the secret from the cloud\n"
CONFIG_THROW = (
    "Reading config file '/app/packages/shared-schemas/drizzle.config.ts'\n"
    "Error: secret store unreachable\n    at Object.<anonymous> (/app/packages/shared-schemas/drizzle.config.ts:9:9)\n"
)

NO_SCHEMA_FILES = (
    "Reading config file '/app/packages/shared-schemas/drizzle.config.ts'\n"
    "Error  No schema files found for path config ['./src/schema.ts']\n"
    "Error  If path represents a file - please make sure to use .ts or other extension in the path\n"
)
MISSING_ORM = OLD_PULL.split("[")[0] + (
    "Error: Cannot find module 'drizzle-orm/pg-core'\n"
    "Require stack:\n"
    "- /app/packages/shared-schemas/src/schema.ts\n"
    "- /app/node_modules/drizzle-kit/bin.cjs\n"
    "    at Module._resolveFilename (node:internal/modules/cjs/loader:1207:15)\n"
)


@pytest.mark.parametrize(
    ("returncode", "output", "kind", "ok"),
    [
        (0, APPLIED, "applied", True),
        (0, OLD_RENAME, "prompt", False),
        (-15, OLD_RENAME, "prompt", False),
        (0, OLD_DATA_LOSS, "data_loss", False),
        (0, POSTGRES_JS_ERROR, "sql_error", False),
        (0, DROP_SCHEMA, "sql_error", False),
        (1, CONFIG_EXIT, "config_error", False),
        (1, CONFIG_THROW, "config_error", False),
        (0, NO_SCHEMA_FILES, "no_schema_files", False),
        (1, NO_SCHEMA_FILES, "no_schema_files", False),
        (1, MISSING_ORM, "missing_package", False),
        (0, NO_CHANGES, "no_changes", True),
        (0, RENAME, "prompt", False),
        (0, DATA_LOSS, "data_loss", False),
        (0, SQL_ERROR, "sql_error", False),
        (0, ALREADY_EXISTS, "sql_error", False),
        (1, CONNECTION_FAILED, "silent_exit", False),
        (0, CONNECTION_FAILED, "unknown", False),
        (0, PULL + "Error: DB_SCHEMA is not set\n", "error", False),
        (0, PULL + " Warning  something odd\n[✓] Changes applied\n", "warning", False),
        (1, APPLIED, "silent_exit", False),
    ],
)
def test_classify_push(returncode, output, kind, ok):
    outcome = classify_push(returncode, output)
    assert (outcome.kind, outcome.ok) == (kind, ok)


def test_classify_push_details():
    assert classify_push(0, RENAME).prompt == "columns"
    assert classify_push(0, DATA_LOSS).data_loss == ("You're about to delete email column in users table with 1 items",)
    sql = classify_push(0, SQL_ERROR)
    assert sql.message == 'could not create unique index "users_email_uq"'
    assert sql.sql == {
        "severity": "ERROR", "code": "23505", "detail": "Key (email)=(dup@x) is duplicated.",
        "schema": "app_pr_7", "table": "users", "constraint": "users_email_uq",
    }
    assert classify_push(0, ALREADY_EXISTS).sql["code"] == "42P07"


def test_classify_old_drizzle_kit_and_postgres_js():
    rename = classify_push(0, OLD_RENAME)
    assert rename.prompt == "columns"
    assert rename.question == "Is heading column in notes table created or renamed from another column?"
    loss = classify_push(0, OLD_DATA_LOSS)
    assert loss.data_loss == ("You're about to delete body column in notes table with 1 items",)
    pg_js = classify_push(0, POSTGRES_JS_ERROR)
    assert pg_js.message == 'could not create unique index "notes_title_uq"'
    assert pg_js.sql == {
        "severity": "ERROR", "code": "23505", "detail": "Key (title)=(a) is duplicated.",
        "schema": "app", "table": "notes", "constraint": "notes_title_uq",
    }
    assert classify_push(1, CONFIG_EXIT).message == "drizzle-kit could not load its config: could not read the secret from the cloud"
    assert classify_push(1, CONFIG_THROW).message == "drizzle-kit could not load its config: Error: secret store unreachable"
    assert classify_push(0, NO_SCHEMA_FILES).message == "drizzle-kit found no schema files for ['./src/schema.ts']"
    assert classify_push(1, MISSING_ORM).message == "drizzle-orm"
    # A connection that fails after the config loaded stays a (transient) silent exit.
    assert classify_push(1, CONNECTION_FAILED).kind == "silent_exit"


@pytest.mark.parametrize(
    ("line", "stops"),
    [
        ("Is heading column in notes table created or renamed from another column?\n", True),
        ("Is accounts table created or renamed from another table?\n", True),
        ("Is \x1b[1m\x1b[34mstatus\x1b[39m\x1b[22m enum created or renamed from another enum?\n", True),
        ("Do you still want to push changes?\n", True),
        ("[✓] Pulling schema from database...\n", False),
        ("· You're about to delete body column in notes table with 1 items\n", False),
        ("[✓] Changes applied\n", False),
    ],
)
def test_prompt_lines_stop_the_push(line, stops):
    assert waits_for_an_answer(line) is stops


@pytest.mark.parametrize(
    ("version", "supported"),
    [("0.31.10", True), ("0.31.11", True), ("0.39.0", True), ("0.31.9", False), ("0.30.6", False),
     ("1.0.0-beta.2", False), ("1.0.0", False), (None, False), ("garbage", False)],
)
def test_drizzle_kit_version_range(version, supported):
    note = drizzle_kit_version_note(version)
    assert (note == "") is supported
    if not supported:
        assert ">=0.31.10 <1.0.0" in note
    if version in ("0.30.6", "0.31.9"):
        assert "waits at prompts" in note and "upgrade drizzle-kit" in note


def test_foreign_key_churn_is_named():
    long_name = "project_members_user_id_references_users_id_on_delete_cascade_fk"
    manifest = {"tables": [{"name": "m", "foreignKeys": [{"name": long_name}, {"name": "short_fk"}]}]}
    assert long_foreign_key_names(manifest) == [long_name]
    assert recreated_foreign_keys({"a_fk": 1, "b_fk": 2}, {"a_fk": 1, "b_fk": 3, "c_fk": 4}) == ["b_fk"]
    warning = foreign_key_churn_warning("app", ["b_fk"], [long_name])
    assert long_name in warning and "b_fk" in warning and "at most 63 bytes" in warning
    assert foreign_key_churn_warning("app", [], []) is None


@pytest.mark.parametrize(
    ("drizzle", "postgres_type"),
    [
        ("varchar(255)", "character varying(255)"),
        ("timestamp with time zone", "timestamp with time zone"),
        ("timestamp", "timestamp without time zone"),
        ("timestamp (3)", "timestamp(3) without time zone"),
        ("project_status", "app_pr_7.project_status"),
        ("numeric(10, 2)", "numeric(10,2)"),
        ("serial", "integer"),
        ("text[]", "text[]"),
        ("uuid", "uuid"),
    ],
)
def test_normalize_type_same(drizzle, postgres_type):
    assert normalize_type(drizzle, "app_pr_7") == normalize_type(postgres_type, "app_pr_7")


@pytest.mark.parametrize(("a", "b"), [("varchar(20)", "character varying(40)"), ("text", "uuid"), ("timestamp", "timestamp with time zone")])
def test_normalize_type_different(a, b):
    assert normalize_type(a, "app") != normalize_type(b, "app")


MANIFEST = {
    "schema": "app",
    "tables": [
        {"name": "users", "schema": "app", "columns": [
            {"name": "id", "type": "uuid", "notNull": True},
            {"name": "full_name", "type": "varchar(120)", "notNull": False},
        ]},
    ],
    "enums": [{"name": "project_status", "schema": "app", "values": ["active", "paused"]}],
}


def test_verify_state_names_every_problem():
    state = SchemaState(
        tables={"users": {"id": ("text", True), "display_name": ("character varying(120)", False)}},
        enums={"project_status": ["active"]},
    )
    assert verify_state(MANIFEST, state, "app") == [
        "column app.users.id is text in the database but uuid in the schema file",
        "column app.users.full_name is missing",
        "enum app.project_status has values ['active'], the schema file ['active', 'paused']",
    ]
    assert verify_state(MANIFEST, SchemaState({}, {}), "app") == [
        "table app.users is missing",
        "enum app.project_status is missing",
    ]
    good = SchemaState({"users": {"id": ("uuid", True), "full_name": ("character varying(120)", False)}},
                       {"project_status": ["active", "paused"]})
    assert verify_state(MANIFEST, good, "app") == []


def test_describe_ambiguity_names_the_columns():
    state = SchemaState({"users": {"id": ("uuid", True), "display_name": ("character varying(120)", False)}}, {})
    assert describe_ambiguity(MANIFEST, state) == [
        "table users: column full_name (new in the schema file) vs display_name (only in the database)"
    ]


# --- the step as a process ---------------------------------------------------------------------


def run_migrate(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps.migrate", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def failure_line(proc: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in proc.stderr.splitlines() if line.startswith("FAILED migrate:"))


def test_pooler_port_is_refused_before_anything_else():
    # The app dir does not exist and nothing listens: the refusal has to come first.
    proc = run_migrate(
        "--app-dir", "no/such/app", "--schema", "app", "--timeout", "5",
        env={"DATABASE_URL": "postgres://u:secret-pw@127.0.0.1:6543/postgres"},
    )
    assert proc.returncode == 1
    line = failure_line(proc)
    assert "port 6543" in line and "transaction pooler" in line and "session pooler" in line
    assert "secret-pw" not in proc.stderr + proc.stdout
    assert "attempt 1 of 3" in proc.stderr and "not retrying" in proc.stderr


def test_pooler_port_in_key_value_dsn_is_refused():
    proc = run_migrate(
        "--app-dir", "no/such/app", "--schema", "app", "--timeout", "5",
        env={"DATABASE_URL": "host=aws-0-eu.pooler.supabase.com port=6543 dbname=postgres user=u password=not-a-real-password"},
    )
    assert proc.returncode == 1 and "port 6543" in failure_line(proc)


@pytest.mark.parametrize("schema", ["App", "1app", "app-pr-7", "app; drop schema app", "a" * 64])
def test_invalid_schema_name_is_refused(schema):
    proc = run_migrate("--app-dir", "examples/app", "--schema", schema, "--timeout", "5",
                       env={"DATABASE_URL": "postgres://u:not-a-real-password@127.0.0.1:1/x"})
    assert proc.returncode == 1
    assert "is not a plain PostgreSQL identifier" in failure_line(proc)


def test_missing_database_url():
    proc = run_migrate("--app-dir", "examples/app", "--schema", "app", "--timeout", "5")
    assert proc.returncode == 1 and "DATABASE_URL is not set" in failure_line(proc)


def test_timeout_must_be_positive():
    proc = run_migrate("--app-dir", "examples/app", "--schema", "app", "--timeout", "0")
    assert proc.returncode == 2 and "--timeout: must be positive" in proc.stderr


# --- against PostgreSQL and drizzle-kit ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_app(source: Path, dest: Path, *, without_bins: tuple[str, ...] = ()) -> Path:
    """A copy of an app whose node_modules links to the installed one (minus some .bin tools)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("node_modules", ".next", "out", "dist"), symlinks=True)
    installed = source / "node_modules"
    assert (installed / ".bin").is_dir(), f"{installed} is not installed: run bash .ci/setup"
    if not without_bins:
        (dest / "node_modules").symlink_to(installed)
        return dest
    (dest / "node_modules" / ".bin").mkdir(parents=True)
    for entry in installed.iterdir():
        if entry.name != ".bin":
            (dest / "node_modules" / entry.name).symlink_to(entry)
    for tool in (installed / ".bin").iterdir():
        if tool.name not in without_bins:
            (dest / "node_modules" / ".bin" / tool.name).symlink_to(tool.resolve())
    return dest


def edit(app: Path, file: Path, old: str, new: str) -> None:
    path = app / file
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """examples/app without node_modules (symlinked to the real one), ready to be edited."""
    return copy_app(APP, tmp_path / "app")


def edit_define(app: Path, old: str, new: str) -> None:
    edit(app, DEFINE, old, new)


def push(db: Database, schema: str, *extra: str, app: Path = APP, timeout: str = "120", **env: str):
    with db.connect() as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    return run_migrate("--app-dir", str(app), "--schema", schema, "--timeout", timeout, *extra,
                       env={"DATABASE_URL": db.url, **env})


def release_when_awaited(db: Database, holder, deadline_s: float = 60.0) -> None:
    """Unlock `holder`'s advisory locks as soon as another session has tried to take one (the step
    polls with pg_try_advisory_lock, so pg_stat_activity shows that as the session's last query)."""
    stop = time.monotonic() + deadline_s
    holder_pid = holder.execute("SELECT pg_backend_pid()").fetchone()[0]
    with db.connect() as observer:
        while time.monotonic() < stop:
            waiting = observer.execute(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid NOT IN (pg_backend_pid(), %s)"
                " AND query LIKE '%%pg_try_advisory_lock%%'",
                (holder_pid,),
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
    holder.execute("SELECT pg_advisory_unlock_all()")


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def catalog(db: Database, schema: str) -> list[tuple]:
    """Every table, column, index and constraint of `schema` with its oid: a re-created one differs."""
    with db.connect() as conn:
        return conn.execute(
            """
            SELECT c.relname, c.oid::bigint, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = %(s)s
            UNION ALL
            SELECT con.conname, con.oid::bigint, 'constraint', pg_get_constraintdef(con.oid), NULL
            FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace WHERE n.nspname = %(s)s
            ORDER BY 1, 2, 4
            """,
            {"s": schema},
        ).fetchall()


def add_user(db: Database, schema: str, subject: str = "s1") -> None:
    with db.connect() as conn:
        conn.execute(
            f'INSERT INTO "{schema}".users (subject, email, display_name) VALUES (%s, %s, %s)',
            (subject, f"{subject}@example.com", "Alice"),
        )


def users(db: Database, schema: str) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(f'SELECT subject, email, display_name FROM "{schema}".users ORDER BY subject').fetchall()


@pytest.mark.slow
def test_two_schemas_from_one_file_then_no_changes(pg_database: Database):
    first = [result_of(push(pg_database, schema)) for schema in ("app", "app_pr_7")]
    assert [r["outcome"] for r in first] == ["applied", "applied"]
    assert all(r["tables"] == 3 and r["columns"] == 16 for r in first)
    add_user(pg_database, "app")
    assert users(pg_database, "app_pr_7") == []  # independent schemas
    before = {s: catalog(pg_database, s) for s in ("app", "app_pr_7")}
    again = [result_of(push(pg_database, schema)) for schema in ("app", "app_pr_7")]
    assert [r["outcome"] for r in again] == ["no_changes", "no_changes"]
    assert {s: catalog(pg_database, s) for s in ("app", "app_pr_7")} == before
    assert users(pg_database, "app") == [("s1", "s1@example.com", "Alice")]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--allow-data-loss",)])
def test_rename_ambiguity_fails_and_names_the_column(pg_database: Database, app_copy: Path, extra):
    result_of(push(pg_database, "app_pr_7"))
    add_user(pg_database, "app_pr_7")
    before = catalog(pg_database, "app_pr_7")
    edit_define(app_copy, "varchar('display_name'", "varchar('full_name'")
    proc = push(pg_database, "app_pr_7", *extra, app=app_copy)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert "rename question" in line and "nothing was applied" in line
    assert "table users: column full_name (new in the schema file) vs display_name (only in the database)" in line
    assert "RENAME COLUMN" in line
    assert catalog(pg_database, "app_pr_7") == before
    assert users(pg_database, "app_pr_7") == [("s1", "s1@example.com", "Alice")]


@pytest.mark.slow
def test_data_loss_needs_allow_data_loss(pg_database: Database, app_copy: Path):
    result_of(push(pg_database, "app_pr_7"))
    add_user(pg_database, "app_pr_7")
    edit_define(app_copy, "      email: varchar('email', { length: 320 }),\n", "")
    refused = push(pg_database, "app_pr_7", app=app_copy)
    assert refused.returncode == 1
    line = failure_line(refused)
    assert "would lose data and was not applied" in line
    assert "You're about to delete email column in users table with 1 items" in line
    digest = re.search(r"data-loss digest ([0-9a-f]{16})", line).group(1)
    assert f"pulumi config set approveDataLoss {digest}" in line and "allowDataLoss" not in line
    assert users(pg_database, "app_pr_7") == [("s1", "s1@example.com", "Alice")]

    applied = result_of(push(pg_database, "app_pr_7", "--allow-data-loss", app=app_copy))
    assert applied["outcome"] == "applied" and applied["dropped"] == ["column users.email"]
    with pg_database.connect() as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'app_pr_7'"
            " AND table_name = 'users' ORDER BY ordinal_position").fetchall()]
    assert columns == ["id", "subject", "display_name", "created_at"]


@pytest.mark.slow
def test_sql_error_is_a_failure_with_code_and_constraint(pg_database: Database, app_copy: Path):
    result_of(push(pg_database, "app_pr_7"))
    add_user(pg_database, "app_pr_7", "s1")
    add_user(pg_database, "app_pr_7", "s2")
    with pg_database.connect() as conn:
        conn.execute("UPDATE app_pr_7.users SET email = 'dup@example.com'")
    edit_define(
        app_copy,
        "(t) => [uniqueIndex('users_subject_uq').on(t.subject)]",
        "(t) => [uniqueIndex('users_subject_uq').on(t.subject), uniqueIndex('users_email_uq').on(t.email)]",
    )
    proc = push(pg_database, "app_pr_7", app=app_copy)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert 'could not create unique index "users_email_uq"' in line
    assert "code 23505, table users, constraint users_email_uq" in line
    assert "not transactional" in line


def processes_in(directory: Path) -> list[str]:
    """Processes whose working directory is `directory` (the push's), as 'pid cmdline'."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) == directory:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name} {cmdline}")
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_hung_push_is_killed_at_the_timeout_and_alerts(pg_database: Database, app_copy: Path, webhook):
    result_of(push(pg_database, "app_pr_7"))
    with pg_database.connect(autocommit=False) as holder:
        holder.execute("LOCK TABLE app_pr_7.users IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        proc = push(pg_database, "app_pr_7", app=app_copy, timeout="5", ALERT_WEBHOOK_URL=webhook.url)
        elapsed = time.monotonic() - started
        with pg_database.connect() as conn:
            backends = conn.execute(
                "SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'webstack-migrate%%'"
            ).fetchall()
        holder.rollback()
    assert proc.returncode == 1
    line = failure_line(proc)
    assert "did not finish within 5s and was killed" in line and "1 server session(s) of it terminated" in line
    assert "; its last line: [" in line and "] Pulling schema from database..." in line  # where it hung
    assert proc.stderr.count("drizzle-kit push: running") == 1  # never retried
    assert elapsed < 60
    [alert] = webhook.requests
    assert alert.json["attachments"][0]["title"] == TIMEOUT_ALERT
    assert alert.json["text"].startswith(f"[CRITICAL] {TIMEOUT_ALERT}")
    assert processes_in(app_copy) == []
    assert backends == []


@pytest.mark.slow
def test_second_push_on_a_schema_waits_for_the_lock(pg_database: Database, webhook):
    result_of(push(pg_database, "app_pr_7"))
    with pg_database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended('webstack-migrate:app_pr_7', 0))")
        blocked = push(pg_database, "app_pr_7", timeout="3", ALERT_WEBHOOK_URL=webhook.url)
        assert blocked.returncode == 1
        assert "waited 3s for another migration of schema app_pr_7" in failure_line(blocked)
        assert "drizzle-kit push: running" not in blocked.stderr
        assert webhook.requests[0].json["attachments"][0]["title"] == TIMEOUT_ALERT
        # Another schema is not blocked by that lock.
        assert result_of(push(pg_database, "app_pr_8"))["outcome"] == "applied"
        # Released once the second push is seen waiting on the lock (pg_locks), not after a fixed
        # delay: on a loaded machine the push may take longer than any delay to reach the lock.
        release = threading.Thread(target=release_when_awaited, args=(pg_database, holder))
        release.start()
        waited = push(pg_database, "app_pr_7", timeout="60")
        release.join()
    assert "holds the lock" in waited.stderr
    assert result_of(waited)["outcome"] == "no_changes"


@pytest.mark.slow
def test_prods_migration_lock_is_out_of_an_advisory_keys_reach(pg_database: Database, webhook):
    result_of(push(pg_database, "app"))
    with pg_database.connect() as anyone:
        # The advisory key of prod's schema, which any role may take, holds nothing back ...
        anyone.execute("SELECT pg_advisory_lock(hashtextextended('webstack-migrate:app', 0))")
        assert result_of(push(pg_database, "app", timeout="30"))["outcome"] == "no_changes"
    with pg_database.connect() as other_run:
        # ... prod's own lock (a row of webstack_audit.locks) does, for a bounded time, with the alert.
        holder = other_run.info.backend_pid
        other_run.execute("BEGIN")
        other_run.execute("SELECT 1 FROM webstack_audit.locks WHERE name = 'webstack-migrate:app' FOR UPDATE")
        blocked = push(pg_database, "app", timeout="3", ALERT_WEBHOOK_URL=webhook.url)
        other_run.execute("ROLLBACK")
    assert blocked.returncode == 1
    assert "waited 3s for another migration of schema app" in failure_line(blocked)
    assert f"held by pid {holder}" in failure_line(blocked)
    assert "drizzle-kit push: running" not in blocked.stderr
    assert webhook.requests[0].json["attachments"][0]["title"] == TIMEOUT_ALERT


@pytest.mark.slow
def test_unreachable_database_is_retried_then_fails(pg_database: Database):
    port = free_port()
    proc = run_migrate("--app-dir", "examples/app", "--schema", "app", "--timeout", "30",
                       env={"DATABASE_URL": f"postgres://postgres:not-a-real-password@127.0.0.1:{port}/postgres"})
    assert proc.returncode == 1
    assert f"cannot reach the database at 127.0.0.1:{port}/postgres" in failure_line(proc)
    assert "attempt 2 of 3" in proc.stderr and "giving up" in proc.stderr


@pytest.mark.slow
def test_missing_database_is_not_retried(pg_database: Database):
    url = pg_database.server.url("no_such_db")
    proc = run_migrate("--app-dir", "examples/app", "--schema", "app", "--timeout", "30", env={"DATABASE_URL": url})
    assert proc.returncode == 1
    assert "/no_such_db does not exist" in failure_line(proc)
    assert "not retrying (permanent)" in proc.stderr


# --- apps that are not examples/app: an older drizzle-kit on postgres.js, broken configs ---------

OLD_APP = REPO / "tests" / "fixtures" / "old-drizzle-kit"
OLD_SCHEMA_FILE = Path("packages/shared-schemas/src/schema.ts")
CONFIG_FILE = Path("packages/shared-schemas/drizzle.config.ts")


@pytest.fixture
def old_app(tmp_path: Path) -> Path:
    return copy_app(OLD_APP, tmp_path / "old-app")


@pytest.mark.slow
def test_old_drizzle_kit_rename_prompt_is_named_at_once(pg_database: Database, old_app: Path, webhook):
    first = push(pg_database, "app_pr_7", app=old_app)
    assert result_of(first)["outcome"] == "applied"
    assert "drizzle-kit 0.30.6 is older than the supported >=0.31.10 <1.0.0" in first.stderr
    before = catalog(pg_database, "app_pr_7")
    edit(old_app, OLD_SCHEMA_FILE, "title: varchar('title'", "heading: varchar('heading'")
    proc = push(pg_database, "app_pr_7", app=old_app, timeout="120", ALERT_WEBHOOK_URL=webhook.url)
    assert proc.returncode == 1
    # Stopped at the question itself: neither drizzle-kit's own exit nor the timeout was waited for.
    assert "drizzle-kit push: stopped at Is heading column in notes table created or renamed from another column?" in proc.stderr
    assert "drizzle-kit push: exited with" not in proc.stderr
    line = failure_line(proc)
    assert "it asked: 'Is heading column in notes table created or renamed from another column?'" in line
    assert "table notes: column heading (new in the schema file) vs title (only in the database)" in line
    assert "nothing was applied" in line and "upgrade drizzle-kit to 0.31.10 or later" in line
    assert "RENAME COLUMN" in line and "timed out" not in proc.stderr and "look for locks" not in proc.stderr
    assert [a.json["attachments"][0]["title"] for a in webhook.requests] != [TIMEOUT_ALERT]
    assert processes_in(old_app) == []
    assert catalog(pg_database, "app_pr_7") == before


@pytest.mark.slow
def test_old_drizzle_kit_data_loss_prompt_is_refused_at_once(pg_database: Database, old_app: Path):
    result_of(push(pg_database, "app_pr_7", app=old_app))
    with pg_database.connect() as conn:
        conn.execute("INSERT INTO app_pr_7.notes (title, body) VALUES ('kept', 'text')")
    edit(old_app, OLD_SCHEMA_FILE, "  body: text('body'),\n", "")
    proc = push(pg_database, "app_pr_7", app=old_app)
    assert proc.returncode == 1
    assert "drizzle-kit push: stopped at Do you still want to push changes?" in proc.stderr
    line = failure_line(proc)
    assert "would lose data and was not applied: You're about to delete body column in notes table with 1 items" in line
    with pg_database.connect() as conn:
        assert conn.execute("SELECT title, body FROM app_pr_7.notes").fetchall() == [("kept", "text")]


@pytest.mark.slow
def test_postgres_js_sql_error_is_read(pg_database: Database, old_app: Path):
    result_of(push(pg_database, "app_pr_7", app=old_app))
    with pg_database.connect() as conn:
        conn.execute("INSERT INTO app_pr_7.notes (title) VALUES ('same'), ('same')")
    edit(old_app, OLD_SCHEMA_FILE, "import { pgSchema,", "import { uniqueIndex, pgSchema,")
    edit(old_app, OLD_SCHEMA_FILE, "  body: text('body'),\n});", "  body: text('body'),\n}, (t) => [uniqueIndex('notes_title_uq').on(t.title)]);")
    proc = push(pg_database, "app_pr_7", app=old_app)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert 'failed in SQL: could not create unique index "notes_title_uq"' in line
    assert "code 23505, table notes, constraint notes_title_uq" in line
    assert "without saying it applied anything" not in proc.stderr


@pytest.mark.slow
def test_unexported_pg_schema_is_named(pg_database: Database, old_app: Path):
    edit(old_app, OLD_SCHEMA_FILE, "export const dbSchema", "const dbSchema")
    proc = push(pg_database, "app_pr_7", app=old_app)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert "tried to drop schema app_pr_7" in line and "does not export its pgSchema object" in line
    assert "export const dbSchema = pgSchema(process.env.DB_SCHEMA!);" in line
    # What drizzle-kit did before its DROP SCHEMA failed, as the line says: the tables exist.
    assert ("notes", "r") in {(row[0], row[2]) for row in catalog(pg_database, "app_pr_7")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config_edit", "said"),
    [
        ("export default defineConfig", "console.error('could not read the secret from the cloud'); process.exit(1);\nexport default defineConfig"),
        ("export default defineConfig", "throw new Error('could not read the secret from the cloud');\nexport default defineConfig"),
    ],
    ids=["exit-1", "throw"],
)
def test_config_that_fails_to_load_is_not_retried(pg_database: Database, old_app: Path, config_edit, said):
    edit(old_app, CONFIG_FILE, config_edit, said)
    proc = push(pg_database, "app_pr_7", app=old_app)
    assert proc.returncode == 1
    line = failure_line(proc)
    # The pipeline reads the config's tables before the push (steps.drizzle_tables): it fails there.
    assert "the drizzle config could not load, so the migration failed before reaching the database" in line
    assert "could not read the secret from the cloud" in line and "not retried" in line
    assert "only DB_SCHEMA and DATABASE_URL" in line
    assert proc.stderr.count("drizzle-kit push: running") == 0
    assert "attempt 2" not in proc.stderr and "pulling the schema" not in proc.stderr


@pytest.mark.slow
# tsx is no longer a tool of the pipeline's (drizzle-kit loads TypeScript with its own loader).
@pytest.mark.parametrize("tool", ["drizzle-kit"])
def test_missing_tool_is_one_line(pg_database: Database, tmp_path: Path, tool):
    app = copy_app(OLD_APP, tmp_path / "app", without_bins=(tool,))
    proc = push(pg_database, "app_pr_7", app=app)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert f"{tool} is not installed in" in line and f"add {tool} to the devDependencies" in line
    assert "Traceback" not in proc.stderr


LONG_FK = "project_members_user_id_references_users_id_on_delete_cascade_foreign_key"


@pytest.mark.slow
def test_foreign_key_churn_is_reported(pg_database: Database, app_copy: Path):
    edit_define(app_copy, "name: 'members_user_fk'", f"name: '{LONG_FK}'")
    truncated = LONG_FK.encode()[:63].decode()
    first = push(pg_database, "app_pr_7", app=app_copy)
    assert result_of(first)["recreated_foreign_keys"] == []
    assert f"foreign key names over 63 bytes in the schema file: {LONG_FK}" in first.stderr

    def oid_of(name: str) -> int:
        with pg_database.connect() as conn:
            return conn.execute("SELECT oid::bigint FROM pg_constraint WHERE conname = %s", (name,)).fetchone()[0]

    oid = oid_of(truncated)
    second = push(pg_database, "app_pr_7", app=app_copy)
    assert result_of(second)["recreated_foreign_keys"] == [truncated]
    assert oid_of(truncated) != oid  # the catalog agrees: drizzle-kit dropped it and added it again
    assert f"dropped and re-added by this push: {truncated}" in second.stderr
    assert "at most 63 bytes" in second.stderr

    # A short name stops the churn, and the warning with it.
    edit_define(app_copy, f"name: '{LONG_FK}'", "name: 'members_user_fk'")
    result_of(push(pg_database, "app_pr_7", app=app_copy))
    third = push(pg_database, "app_pr_7", app=app_copy)
    assert result_of(third)["outcome"] == "no_changes" and result_of(third)["recreated_foreign_keys"] == []
    assert "63 bytes" not in third.stderr


def test_data_loss_digest_covers_the_change_and_the_state_it_starts_from():
    state = SchemaState({"users": {"id": ("uuid", True), "email": ("text", False)}}, {})
    drop = ("You're about to delete email column in users table with 1 items",)
    digest = data_loss_digest("app", drop, state)
    assert len(digest) == 16 and int(digest, 16) >= 0
    # More rows meanwhile: the same change.
    assert data_loss_digest("app", ("You're about to delete email column in users table with 9 items",), state) == digest
    # Another change, another schema, or the same change from another state: another digest.
    assert data_loss_digest("app", ("You're about to delete id column in users table with 1 items",), state) != digest
    assert data_loss_digest("app_pr_7", drop, state) != digest
    other_state = SchemaState({"users": {"id": ("uuid", True), "email": ("text", True)}}, {})
    assert data_loss_digest("app", drop, other_state) != digest


@pytest.mark.parametrize("value", ["yes", "true", "ABCDEF0123456789", "0123"])
def test_approval_must_be_a_digest(value):
    proc = run_migrate("--app-dir", "examples/app", "--schema", "app", "--approve-data-loss", value)
    assert proc.returncode == 2 and "--approve-data-loss: must be the 16-hex-digit digest" in proc.stderr


@pytest.mark.slow
def test_approve_data_loss_applies_exactly_the_refused_change_once(pg_database: Database, app_copy: Path):
    result_of(push(pg_database, "app", app=app_copy))
    add_user(pg_database, "app")
    edit_define(app_copy, "      email: varchar('email', { length: 320 }),\n", "")
    refused = push(pg_database, "app", app=app_copy)
    digest = re.search(r"data-loss digest ([0-9a-f]{16})", failure_line(refused)).group(1)

    # A value that approves another change approves nothing here.
    wrong = "0" * 16 if digest != "0" * 16 else "1" * 16
    still = push(pg_database, "app", "--approve-data-loss", wrong, app=app_copy)
    assert still.returncode == 1
    assert f"data-loss digest {digest} (`approveDataLoss` is {wrong}, which approves another change)" in failure_line(still)
    assert users(pg_database, "app") == [("s1", "s1@example.com", "Alice")]

    applied = push(pg_database, "app", "--approve-data-loss", digest, app=app_copy)
    assert result_of(applied)["dropped"] == ["column users.email"]
    assert f"approveDataLoss {digest} approves this data loss on app" in applied.stderr
    assert users_columns(pg_database, "app") == ["id", "subject", "display_name", "created_at"]

    # The same value does not approve the next data-losing change.
    edit_define(app_copy, "      displayName: varchar('display_name', { length: 120 }),\n", "")
    next_change = push(pg_database, "app", "--approve-data-loss", digest, app=app_copy)
    assert next_change.returncode == 1
    line = failure_line(next_change)
    assert "You're about to delete display_name column in users table with 1 items" in line
    assert "which approves another change" in line
    assert "display_name" in users_columns(pg_database, "app")


def users_columns(db: Database, schema: str) -> list[str]:
    with db.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = 'users' ORDER BY ordinal_position", (schema,)).fetchall()]


@pytest.mark.slow
def test_relative_schema_path_names_the_fix(pg_database: Database, old_app: Path):
    # drizzle-kit runs in the schema package, as its own push script does: a path relative to it works...
    edit(old_app, CONFIG_FILE, "schema: path.join(__dirname, 'src', 'schema.ts')", "schema: './src/schema.ts'")
    proc = push(pg_database, "app_pr_7", app=old_app)
    assert proc.returncode == 0, proc.stderr
    # ...and a path that names no file there says so, before anything reaches the database.
    edit(old_app, CONFIG_FILE, "schema: './src/schema.ts'", "schema: './schema/*.ts'")
    proc = push(pg_database, "app_pr_7", app=old_app)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert 'no schema files match "./schema/*.ts"' in line and "drizzle-kit push: running" not in proc.stderr
    assert "path.join(__dirname, 'src', 'schema.ts')" in line and "needs a fix" not in line


@pytest.mark.slow
def test_drizzle_orm_not_at_the_root_names_the_fix(pg_database: Database, tmp_path: Path):
    app = copy_app(OLD_APP, tmp_path / "app", without_bins=("none",))
    (app / "node_modules" / "drizzle-orm").unlink()
    proc = push(pg_database, "app_pr_7", app=app)
    assert proc.returncode == 1
    line = failure_line(proc)
    assert "cannot find the package drizzle-orm from the workspace root" in line, proc.stderr
    assert "drizzle-kit push: running" not in proc.stderr  # found before anything reaches the database
    assert "declare drizzle-orm in the devDependencies of the workspace root's package.json" in line
    assert "needs a fix" not in line and "Traceback" not in proc.stderr
