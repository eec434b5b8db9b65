"""Create or drop the stack's PostgreSQL schema (phase 3, `database-schema`).

    python -m steps.schema create --schema NAME   # CREATE SCHEMA IF NOT EXISTS, every stack
    python -m steps.schema drop --schema NAME     # DROP SCHEMA IF EXISTS ... CASCADE, PR stacks only

DATABASE_URL comes from the environment only. Every name must be a plain lowercase identifier
(`steps.database.SCHEMA_NAME`, checked before connecting) and is quoted with `sql.Identifier`
anyway. `drop` accepts only names derived for a PR stack (`..._pr_<N>`): prod's `app` and the
preview template's `app_preview` are refused, whatever asks. Both are idempotent and print
`{"schema": NAME, "action": "create"|"drop", "changed": bool}`; connection failures are retried
by the runtime (bad credentials or a missing database are not).
"""

from __future__ import annotations

import sys

from core.database import SCHEMA_STEP_APPLICATION
from core.names import PR_SCHEMA
from steps.args import StepParser
from steps.database import connect, database_url, schema_name_problem
from steps.runtime import PermanentError, run_step

# The pipeline's schema changes mark their connection (workflow.ddl_audit tells them from
# out-of-band DDL by it).
# A schema in use (a live Lambda's transaction) must not block a destroy forever; a lock timeout
# is an OperationalError, which the runtime retries.
LOCK_TIMEOUT = "30s"


def validate_schema_name(name: str) -> str:
    problem = schema_name_problem(name)
    if problem:
        raise PermanentError(problem, hint="pass the stack's schema (`dbSchema`, or <dbSchema>_pr_<N> for a PR stack)")
    return name


def validate_droppable(name: str) -> str:
    validate_schema_name(name)
    if not PR_SCHEMA.fullmatch(name):
        raise PermanentError(
            f"refusing to drop schema {name!r}: only the schema of a PR stack (<base>_pr_<N>) may be dropped",
            hint="prod and the preview template keep their schema; drop it by hand if you really mean it",
        )
    return name


def schema_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


def create_schema(name: str) -> dict:
    from psycopg import sql

    validate_schema_name(name)
    with connect(database_url(), application_name=SCHEMA_STEP_APPLICATION) as conn:
        existed = schema_exists(conn, name)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
        if not schema_exists(conn, name):
            raise PermanentError(f"CREATE SCHEMA {name} ran but the schema does not exist")
    return {"schema": name, "action": "create", "changed": not existed}


def drop_schema(name: str) -> dict:
    from psycopg import sql

    validate_droppable(name)
    with connect(database_url(), application_name=SCHEMA_STEP_APPLICATION) as conn:
        existed = schema_exists(conn, name)
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        if schema_exists(conn, name):
            raise PermanentError(f"DROP SCHEMA {name} ran but the schema still exists")
    return {"schema": name, "action": "drop", "changed": existed}


def parse(argv: list[str] | None = None):
    parser = StepParser(prog="python -m steps.schema", description=__doc__.splitlines()[0])
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
