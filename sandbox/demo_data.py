"""Demo rows for the sandbox's stack: one user (the demo token's `sub`) and a few projects.

Written into the schema the stack's migration created (so the tables are the app's own, pushed by
drizzle-kit), idempotently: a second `up` finds the user and adds nothing.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

DEMO_SUBJECT = "sandbox-user"
DEMO_PROJECTS = (
    ("Website relaunch", "active", "Next.js on Pages, API on Lambda"),
    ("Billing export", "paused", "Waiting for the finance team"),
    ("Old intranet", "archived", None),
)


def seed(database_url: str, schema: str, subject: str = DEMO_SUBJECT) -> int:
    """Insert the demo user and projects unless the user exists; returns the projects added."""
    users = sql.Identifier(schema, "users")
    projects = sql.Identifier(schema, "projects")
    with psycopg.connect(database_url, autocommit=False, connect_timeout=10) as conn:
        row = conn.execute(
            sql.SQL("INSERT INTO {} (subject, display_name) VALUES (%s, %s) ON CONFLICT (subject) DO NOTHING RETURNING id")
            .format(users),
            (subject, "Sandbox user"),
        ).fetchone()
        if row is None:
            return 0
        for name, status, description in DEMO_PROJECTS:
            conn.execute(
                sql.SQL("INSERT INTO {} (owner_id, name, status, description) VALUES (%s, %s, %s, %s)").format(projects),
                (row[0], name, status, description),
            )
    return len(DEMO_PROJECTS)
