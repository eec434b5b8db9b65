"""A PostgreSQL database holding the example app's tables, pushed by the app's own drizzle-kit,
with one project for `SUBJECT` and one for another user (fixture `app_database`).

    from tests.support.app_database import SCHEMA, SUBJECT, app_database  # noqa: F401 - fixture
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import Database

APP = Path(__file__).resolve().parents[2] / "examples" / "app"
SCHEMA = "app"
SUBJECT = "user-1"


def push_app_schema(url: str, schema: str) -> None:
    """Create `schema` and push the app's tables into it with the app's own drizzle-kit."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    push = subprocess.run(
        [str(APP / "node_modules/.bin/drizzle-kit"), "push", "--config", "packages/shared-schemas/drizzle.config.ts"],
        cwd=APP, env={**os.environ, "DB_SCHEMA": schema, "DATABASE_URL": url},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    # drizzle-kit exits 0 on failure too (docs/facts.md): its output decides.
    assert push.returncode == 0 and "Changes applied" in push.stdout + push.stderr, push.stdout + push.stderr


def add_project(conn: psycopg.Connection, schema: str, subject: str, name: str) -> None:
    """A user `subject` (created when missing) owning a project `name`."""
    owner = conn.execute(
        f'insert into "{schema}".users (subject) values (%s) on conflict (subject) do update set subject = excluded.subject returning id',
        (subject,),
    ).fetchone()[0]
    conn.execute(f'insert into "{schema}".projects (owner_id, name) values (%s, %s)', (owner, name))


@pytest.fixture
def app_database(pg_database: Database) -> Database:
    push_app_schema(pg_database.url, SCHEMA)
    with pg_database.connect() as conn:
        add_project(conn, SCHEMA, SUBJECT, "mine")
        add_project(conn, SCHEMA, "user-2", "not mine")
    return pg_database
