"""The database facts the program's settings and the steps share: what a schema name may be,
which connection a migration may use, where the URL comes from, and how a step connects.

Imported by `components.settings` (validation before anything is declared) and by the steps
(validation again at deploy time, since a step can be run by hand), so the two never disagree.
"""

from __future__ import annotations

import os
import re

from steps.retry import PermanentError

# A plain PostgreSQL identifier, matched whole: it is also quoted with `sql.Identifier` everywhere.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Supabase's transaction pooler: drizzle-kit push hangs there (FACTS.md).
TRANSACTION_POOLER_PORT = 6543
APPLICATION_NAME = "webstack-steps"
CONNECT_TIMEOUT = 15


def schema_name_problem(name: str) -> str | None:
    """Why `name` is not a safe schema name, or None."""
    if SCHEMA_NAME.fullmatch(name):
        return None
    return (
        f"schema name {name[:80]!r} is not a plain PostgreSQL identifier ([a-z_][a-z0-9_]{{0,62}}): "
        "use lower-case letters, digits and '_', at most 63, not starting with a digit"
    )


def connection_problem(url: str) -> str | None:
    """Why `url` cannot be used to migrate (unparseable, or the transaction pooler), or None.

    Parsed the way libpq parses it, URL or keyword form, so a port given as `port=6543` or in a
    multi-host list is seen as well as `host:6543/db`.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        return "the database URL is not a valid PostgreSQL connection string: use postgres://user:password@host:5432/db"
    ports = [port.strip() for port in str(params.get("port") or "").split(",")]
    if str(TRANSACTION_POOLER_PORT) in ports:
        return (
            f"the database URL uses port {TRANSACTION_POOLER_PORT} (Supabase's transaction pooler), where "
            "drizzle-kit push hangs: use the direct connection or the session pooler (port 5432)"
        )
    return None


def database_url() -> str:
    """DATABASE_URL from the process environment (the CI job's secret), never from a flag."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise PermanentError(
            "DATABASE_URL is not set",
            hint="set it in the CI job's environment (a secret), postgres://user:password@host:port/db",
        )
    return url


def connect(url: str, *, application_name: str = APPLICATION_NAME):
    """An autocommit psycopg connection; errors are classified by the runtime (steps.retry)."""
    import psycopg  # imported here: the CLI's argument checks run without a database driver

    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=application_name)
