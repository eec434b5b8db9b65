"""A PostgreSQL database holding the example app's tables, pushed by the app's own drizzle-kit,
with one project for `SUBJECT` and one for another user (fixture `app_database`).

    from tests.support.app_database import SCHEMA, SUBJECT, app_database  # noqa: F401 - fixture
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.postgres import Database

APP = Path(__file__).resolve().parents[2] / "examples" / "app"
SCHEMA = "app"
SUBJECT = "user-1"


@pytest.fixture
def app_database(pg_database: Database) -> Database:
    with pg_database.connect() as conn:
        conn.execute(f'create schema "{SCHEMA}"')
    push = subprocess.run(
        [str(APP / "node_modules/.bin/drizzle-kit"), "push", "--config", "packages/shared-schemas/drizzle.config.ts"],
        cwd=APP, env={**os.environ, "DB_SCHEMA": SCHEMA, "DATABASE_URL": pg_database.url},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    # drizzle-kit exits 0 on failure too (FACTS.md): its output decides.
    assert push.returncode == 0 and "Changes applied" in push.stdout + push.stderr, push.stdout + push.stderr
    with pg_database.connect() as conn:
        owner = conn.execute(f'insert into "{SCHEMA}".users (subject) values (%s) returning id', (SUBJECT,)).fetchone()[0]
        other = conn.execute(f'insert into "{SCHEMA}".users (subject) values (%s) returning id', ("user-2",)).fetchone()[0]
        conn.execute(f'insert into "{SCHEMA}".projects (owner_id, name) values (%s, %s)', (owner, "mine"))
        conn.execute(f'insert into "{SCHEMA}".projects (owner_id, name) values (%s, %s)', (other, "not mine"))
    return pg_database
