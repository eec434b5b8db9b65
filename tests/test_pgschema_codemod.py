"""`python -m tools.pgschema`: the one edit the pipeline asks for, made by a command (issue 28 §2).

A schema written the way drizzle's docs start (plain `pgTable`s and a `pgEnum` in `public`, over two
files, one table referencing the other) is refused by the migration; the codemod prints the diff,
changes nothing until `--write`, and after it the same migration step pushes every table into the
stack's schema on real PostgreSQL with the app's own drizzle-kit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.settings import PROJECT_ROOT
from steps.drizzle_tables import read_tables
from steps.runtime import PermanentError
from tests.support.postgres import Database, pg_database, postgres  # noqa: F401 - fixtures
from tests.support.steps_env import steps_env  # noqa: F401 - fixture
from tools.pgschema import after_imports, rewrite_config, rewrite_imports

pytestmark = pytest.mark.usefixtures("steps_env")

INSTALLED = PROJECT_ROOT / "tests" / "fixtures" / "apps" / "esm-api"  # drizzle-kit 0.31, drizzle-orm, pg
ACCOUNTS = """import { pgEnum, pgTable, serial, text } from 'drizzle-orm/pg-core';

export const plan = pgEnum('plan', ['free', 'team']);
export const accounts = pgTable('accounts', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  plan: plan('plan').notNull().default('free'),
});
"""
INVOICES = """import {
  integer,
  pgTable,
  serial,
} from 'drizzle-orm/pg-core';
import { accounts } from './accounts';

export const invoices = pgTable('invoices', {
  id: serial('id').primaryKey(),
  accountId: integer('account_id').notNull().references(() => accounts.id),
  cents: integer('cents').notNull(),
});
"""
CONFIG = """import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/*.ts',
  dbCredentials: { url: process.env.DATABASE_URL! },
});
"""


@pytest.fixture
def plain_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "db" / "src").mkdir(parents=True)
    (app / "package.json").write_text(json.dumps({"name": "app", "private": True, "workspaces": ["db"]}))
    (app / "db" / "package.json").write_text(json.dumps({"name": "@app/db", "version": "1.0.0"}))
    # The installed fixture's node_modules and lockfile: its install marker matches, so nothing installs.
    (app / "node_modules").symlink_to(INSTALLED / "node_modules", target_is_directory=True)
    (app / "package-lock.json").write_bytes((INSTALLED / "package-lock.json").read_bytes())
    (app / "db" / "drizzle.config.ts").write_text(CONFIG)
    (app / "db" / "src" / "accounts.ts").write_text(ACCOUNTS)
    (app / "db" / "src" / "invoices.ts").write_text(INVOICES)
    return app


def codemod(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.pgschema", "--app-dir", str(app), "--schema-package", "db", *args],
        cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_the_codemod_shows_the_diff_then_writes_what_the_migration_pushes(plain_app: Path, pg_database: Database):  # noqa: F811
    package = plain_app / "db"
    with pytest.raises(PermanentError, match="declares table\\(s\\) accounts, invoices in schema public"):
        read_tables(package, Path("drizzle.config.ts"), "app_pr_4")

    shown = codemod(plain_app)
    assert shown.returncode == 0, shown.stderr
    assert "-export const accounts = pgTable('accounts', {" in shown.stdout
    assert "+export const accounts = appSchema.table('accounts', {" in shown.stdout
    assert "+export const plan = appSchema.enum('plan', ['free', 'team']);" in shown.stdout
    assert "+export const appSchema = pgSchema(process.env.DB_SCHEMA!);" in shown.stdout
    assert "+  schemaFilter: [process.env.DB_SCHEMA!]," in shown.stdout
    assert "4 file(s) would change; run again with --write" in shown.stdout
    assert (package / "src" / "accounts.ts").read_text() == ACCOUNTS and not (package / "src" / "pg-schema.ts").exists()

    written = codemod(plain_app, "--write")
    assert written.returncode == 0, written.stderr
    assert "2 table(s) now in the stack's schema (accounts, invoices)" in written.stdout
    assert "pgTable" not in (package / "src" / "invoices.ts").read_text()
    assert codemod(plain_app).stdout.startswith("tools.pgschema: no pgTable")  # a second run changes nothing

    # The migration step pushes both tables, the enum and the foreign key into the PR's schema.
    with pg_database.connect() as conn:
        conn.execute('CREATE SCHEMA "app_pr_4"')
    pushed = subprocess.run(
        [sys.executable, "-m", "steps.migrate", "--app-dir", str(plain_app), "--schema", "app_pr_4", "--timeout", "120",
         "--schema-dir", "db", "--allow-data-loss"],
        cwd=PROJECT_ROOT, env={**os.environ, "DATABASE_URL": pg_database.url}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    with pg_database.connect() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'app_pr_4'")}
        enums = {r[0] for r in conn.execute(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'app_pr_4' AND t.typtype = 'e'")}  # fmt: skip
        public = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"accounts", "invoices"} and enums == {"plan"} and public == set()


def test_imports_keep_what_is_still_used():
    text = "import { pgTable, serial, text as t } from 'drizzle-orm/pg-core';\nconst x = 1;\n"
    assert rewrite_imports(text, {"pgTable"}).startswith("import { serial, text as t } from 'drizzle-orm/pg-core';")
    assert rewrite_imports("import { pgTable } from \"drizzle-orm/pg-core\";\n", {"pgTable"}) == "\n"
    assert INVOICES[: after_imports(INVOICES)].rstrip().endswith("from './accounts';")


def test_the_config_gets_its_schema_filter_once():
    assert "schemaFilter: [process.env.DB_SCHEMA!]," in rewrite_config(CONFIG, True)
    assert rewrite_config("module.exports = {\n  schema: './s.js',\n};\n", False) == (
        "module.exports = {\n  schemaFilter: [process.env.DB_SCHEMA],\n  schema: './s.js',\n};\n"
    )
    assert rewrite_config(CONFIG.replace("dialect", "schemaFilter: ['x'],\n  dialect"), True) is None
