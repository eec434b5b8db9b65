"""Create or drop the stack's PostgreSQL schema (phase 3, `database-schema`).

    python -m steps.schema create --schema NAME   # CREATE SCHEMA IF NOT EXISTS, every stack
    python -m steps.schema drop --schema NAME     # DROP SCHEMA IF EXISTS ... CASCADE, PR stacks only

DATABASE_URL comes from the environment only. Every name must be a plain lowercase identifier
(`^[a-z_][a-z0-9_]{0,62}$`, checked before connecting) and is quoted with `sql.Identifier`
anyway. `drop` accepts only names derived for a PR stack (`..._pr_<N>`): prod's `app` and the
preview template's `app_preview` are refused, whatever asks. Both are idempotent and print
`{"schema": NAME, "action": "create"|"drop", "changed": bool}`; connection failures are retried
by the runtime (bad credentials or a missing database are not).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from steps.runtime import PermanentError, run_step

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The PR-stack derivation (components/settings.py): `<base>_pr_<N>`, N without a leading zero.
DROPPABLE_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*_pr_[1-9][0-9]*$")
APPLICATION_NAME = "webstack-steps"
CONNECT_TIMEOUT = 15
# A schema in use (a live Lambda's transaction) must not block a destroy forever; a lock timeout
# is an OperationalError, which the runtime retries.
LOCK_TIMEOUT = "30s"


def validate_schema_name(name: str) -> str:
    if not SCHEMA_NAME.match(name):
        raise PermanentError(
            f"schema name {name!r} is not a plain PostgreSQL identifier",
            hint="use lowercase letters, digits and _ (at most 63), not starting with a digit",
        )
    return name


def validate_droppable(name: str) -> str:
    validate_schema_name(name)
    if not DROPPABLE_SCHEMA.match(name):
        raise PermanentError(
            f"refusing to drop schema {name!r}: only the schema of a PR stack (<base>_pr_<N>) may be dropped",
            hint="prod and the preview template keep their schema; drop it by hand if you really mean it",
        )
    return name


def database_url() -> str:
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

    return psycopg.connect(
        url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=application_name
    )


def schema_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


def create_schema(name: str) -> dict:
    from psycopg import sql

    validate_schema_name(name)
    with connect(database_url()) as conn:
        existed = schema_exists(conn, name)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
        if not schema_exists(conn, name):
            raise PermanentError(f"CREATE SCHEMA {name} ran but the schema does not exist")
    return {"schema": name, "action": "create", "changed": not existed}


def drop_schema(name: str) -> dict:
    from psycopg import sql

    validate_droppable(name)
    with connect(database_url()) as conn:
        existed = schema_exists(conn, name)
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        if schema_exists(conn, name):
            raise PermanentError(f"DROP SCHEMA {name} ran but the schema still exists")
    return {"schema": name, "action": "drop", "changed": existed}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m steps.schema", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("create", "drop"):
        sub.add_parser(action).add_argument("--schema", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    body = create_schema if args.action == "create" else drop_schema
    return run_step("schema", critical=True, body=lambda: body(args.schema))


if __name__ == "__main__":
    sys.exit(main())
