"""Create or drop the stack's PostgreSQL schema (phase 3, `database-schema`).

    python -m steps.schema create --schema NAME [--claim]    # CREATE SCHEMA IF NOT EXISTS, every stack
    python -m steps.schema drop --schema NAME [--claimed]    # DROP SCHEMA IF EXISTS ... CASCADE, PR stacks only

DATABASE_URL comes from the environment only. Every name must be a plain lowercase identifier
(`steps.database.SCHEMA_NAME`, checked before connecting) and is quoted with `sql.Identifier`
anyway. `drop` accepts only names derived for a PR stack (`..._pr_<N>`): prod's `app` and the
preview template's `app_preview` are refused, whatever asks. Both are idempotent and print
`{"schema": NAME, "action": "create"|"drop", "changed": bool}`; connection failures are retried
by the runtime (bad credentials or a missing database are not).

A PR stack's schema Command drops the schema on delete, and pulumi-command replaces
create-before-delete: a replacement (`pulumi up --replace`, a renamed or re-parented component)
creates the schema (a no-op: it exists) and then runs the old delete, which would drop the live
schema with its data, while the migration, whose trigger did not change, never runs again. So
`create --claim` marks the schema with an owner id (its comment: `webstack-owner:<id>`) and
prints it (`owner`); an update (the same resource: PULUMI_COMMAND_STDOUT holds its id) keeps it,
a new resource takes a new one. `drop --claimed` drops only while the mark is still the one its
own create printed (or there is none): a replaced resource's delete leaves the schema to the new
owner. The read and the change run in one transaction under an advisory lock on the name.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys

from core.database import SCHEMA_STEP_APPLICATION
from core.names import PR_SCHEMA
from steps.args import StepParser
from steps.database import connect, database_url, schema_name_problem
from steps.runtime import PermanentError, log, run_step

# The pipeline's schema changes mark their connection (workflow.ddl_audit tells them from
# out-of-band DDL by it).
# A schema in use (a live Lambda's transaction) must not block a destroy forever; a lock timeout
# is an OperationalError, which the runtime retries.
LOCK_TIMEOUT = "30s"
# The schema's comment that names the resource owning it (`--claim`).
OWNER_MARK = "webstack-owner:"
_OWNER = re.compile(rf"{OWNER_MARK}(?P<owner>[0-9a-f]{{32}})\b")


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


def owner_of(conn, name: str) -> str | None:
    """The owner id in the schema's comment, or None (no schema, no comment, another comment)."""
    row = conn.execute("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (name,)).fetchone()
    match = _OWNER.search(row[0] or "") if row else None
    return match["owner"] if match else None


def own_owner() -> str | None:
    """The owner id this resource's create printed (pulumi-command's PULUMI_COMMAND_STDOUT), if any."""
    for line in reversed((os.environ.get("PULUMI_COMMAND_STDOUT") or "").splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        owner = value.get("owner") if isinstance(value, dict) else None
        if isinstance(owner, str) and re.fullmatch(r"[0-9a-f]{32}", owner):
            return owner
    return None


def _lock(conn, name: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"webstack-schema:{name}",))


def create_schema(name: str, *, claim: bool = False) -> dict:
    from psycopg import sql

    validate_schema_name(name)
    result: dict = {"schema": name, "action": "create"}
    with connect(database_url(), application_name=SCHEMA_STEP_APPLICATION) as conn, conn.transaction():
        _lock(conn, name)
        existed = schema_exists(conn, name)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
        if not schema_exists(conn, name):
            raise PermanentError(f"CREATE SCHEMA {name} ran but the schema does not exist")
        if claim:
            previous, current = own_owner(), owner_of(conn, name)
            owner = previous if previous and previous == current else secrets.token_hex(16)
            if owner != current:
                comment = f"{OWNER_MARK}{owner} (the Pulumi Command that drops this schema on destroy; do not edit)"
                conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(name), sql.Literal(comment)))
            result["owner"] = owner
    result["changed"] = not existed
    return result


def drop_schema(name: str, *, claimed: bool = False) -> dict:
    from psycopg import sql

    validate_droppable(name)
    with connect(database_url(), application_name=SCHEMA_STEP_APPLICATION) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        with conn.transaction():
            _lock(conn, name)
            existed = schema_exists(conn, name)
            if claimed:
                own, current = own_owner(), owner_of(conn, name)
                if current is not None and current != own:
                    log(f"schema {name} belongs to a newer resource ({current}): this one was replaced; not dropped")
                    return {"schema": name, "action": "drop", "changed": False, "owned_by": current}
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            if schema_exists(conn, name):
                raise PermanentError(f"DROP SCHEMA {name} ran but the schema still exists")
    return {"schema": name, "action": "drop", "changed": existed}


def parse(argv: list[str] | None = None):
    parser = StepParser(prog="python -m steps.schema", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create")
    create.add_argument("--schema", required=True)
    create.add_argument("--claim", action="store_true", help="mark the schema as this resource's (its delete drops it)")
    drop = sub.add_parser("drop")
    drop.add_argument("--schema", required=True)
    drop.add_argument("--claimed", action="store_true", help="drop only while the mark is this resource's own")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.action == "create":
        return run_step("schema", critical=True, body=lambda: create_schema(args.schema, claim=args.claim))
    return run_step("schema", critical=True, body=lambda: drop_schema(args.schema, claimed=args.claimed))


if __name__ == "__main__":
    sys.exit(main())
