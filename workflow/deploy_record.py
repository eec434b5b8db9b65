"""Append one deploy record per `pulumi up` to `webstack_audit.deploys` (a workflow step, not a Command).

    pulumi stack output --json --stack "$STACK" | python -m workflow.deploy_record --stack "$STACK" --outcome "$UP_OUTCOME"
    python -m workflow.deploy_record --stack prod --outputs outputs.json

Who (GITHUB_ACTOR), what (GITHUB_SHA, GITHUB_REF, GITHUB_REPOSITORY, the run and its URL), which
stack, with which outcome, and what it produced (the stack outputs: API and site URLs, the function,
prod's `stable` version; secret outputs arrive as "[secret]" from the CLI and stay that way). The
schema and table are created idempotently; every identifier goes through `psycopg.sql`.
DATABASE_URL comes from the environment only.

A workflow step rather than a Pulumi Command: a Command re-runs only when its inputs change, and an
unchanged push must re-run no Command at all, yet every `up` deserves its record.

Non-critical: the deploy has already happened when this runs. Failing a live deploy's job (and, for
a PR, its comment) because the audit table is unreachable would misreport what is live; instead the
runtime retries, then records the skip and sends a warning alert, so the gap is visible. CloudTrail
keeps the AWS side either way. A retried insert cannot double-count: (repository, run, attempt,
stack) is unique.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from core.database import AUDIT_SCHEMA, DEPLOY_RECORD_APPLICATION, DEPLOY_RECORD_LOCK
from core.names import SAFE_STACK_NAME
from steps.args import StepParser, matching
from steps.database import DEFAULT_LOCK_WAIT, connect, database_url, prod_lock
from steps.runtime import PermanentError, run_step

SCHEMA = AUDIT_SCHEMA
TABLE = "deploys"
OUTCOMES = ("success", "failure", "cancelled", "skipped")

# Column -> SQL type; the order is the table's.
COLUMNS = {
    "stack": "text NOT NULL",
    "outcome": "text NOT NULL",
    "actor": "text NOT NULL",
    "commit_sha": "text NOT NULL",
    "ref": "text NOT NULL",
    "repository": "text NOT NULL",
    "run_id": "text NOT NULL",
    "run_attempt": "integer NOT NULL",
    "run_url": "text",
    "function_name": "text",
    "stable_version": "text",
    "api_url": "text",
    "site_url": "text",
    "outputs": "jsonb NOT NULL",
}


def read_outputs(source: TextIO) -> dict[str, Any]:
    """`pulumi stack output --json`; empty input (the stack has no outputs yet, or `up` failed
    before any) is an empty record, not an error."""
    text = source.read().strip()
    if not text:
        return {}
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"stack outputs are not JSON: {exc}", hint="feed it `pulumi stack output --json --stack <stack>`"
        ) from exc
    if not isinstance(outputs, dict):
        raise PermanentError("stack outputs must be a JSON object", hint="feed it `pulumi stack output --json`")
    return outputs


def build_record(stack: str, outcome: str, outputs: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The row for one deploy, from the stack's outputs and the GitHub Actions environment."""
    missing = [name for name in ("GITHUB_ACTOR", "GITHUB_SHA", "GITHUB_RUN_ID") if not env.get(name)]
    if missing:
        raise PermanentError(
            f"{', '.join(missing)} not set",
            hint="run this step inside GitHub Actions (or set them for a manual record)",
        )
    repository = env.get("GITHUB_REPOSITORY", "")
    run_url = None
    if repository:
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        run_url = f"{server}/{repository}/actions/runs/{env['GITHUB_RUN_ID']}"

    def text(key: str) -> str | None:
        value = outputs.get(key)
        return None if value is None else str(value)

    return {
        "stack": stack,
        "outcome": outcome,
        "actor": env["GITHUB_ACTOR"],
        "commit_sha": env["GITHUB_SHA"],
        "ref": env.get("GITHUB_REF", ""),
        "repository": repository,
        "run_id": env["GITHUB_RUN_ID"],
        "run_attempt": int(env.get("GITHUB_RUN_ATTEMPT") or 1),
        "run_url": run_url,
        "function_name": text("functionName"),
        "stable_version": text("stableVersion"),
        "api_url": text("apiUrl"),
        "site_url": text("siteUrl"),
        "outputs": dict(outputs),
    }


def _create_table(conn) -> None:
    from psycopg import sql

    table = sql.Identifier(SCHEMA, TABLE)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in COLUMNS.items()
    )
    # Serializes the first-time DDL of concurrent records (a lock no preview role can take).
    prod_lock(conn, DEPLOY_RECORD_LOCK, wait=DEFAULT_LOCK_WAIT, what="deploy-record")
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {table} ("
            "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "recorded_at timestamptz NOT NULL DEFAULT now(), "
            "{columns}, "
            "UNIQUE (repository, run_id, run_attempt, stack))"
        ).format(table=table, columns=columns)
    )


def append(url: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Create the table if needed and insert the record (once per run attempt and stack)."""
    from psycopg import sql  # imported here: argument and input checks run without a database driver
    from psycopg.types.json import Jsonb

    values = {**record, "outputs": Jsonb(record["outputs"])}
    with connect(url, application_name=DEPLOY_RECORD_APPLICATION) as conn:
        with conn.transaction():
            _create_table(conn)
            row = conn.execute(
                sql.SQL("INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING RETURNING id").format(
                    table=sql.Identifier(SCHEMA, TABLE),
                    names=sql.SQL(", ").join(sql.Identifier(name) for name in COLUMNS),
                    values=sql.SQL(", ").join(sql.Placeholder(name) for name in COLUMNS),
                ),
                values,
            ).fetchone()
    return {
        "table": f"{SCHEMA}.{TABLE}",
        "stack": record["stack"],
        "commit": record["commit_sha"],
        "id": row[0] if row else None,
        "inserted": row is not None,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = StepParser(prog="python -m workflow.deploy_record", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stack", required=True, type=matching(SAFE_STACK_NAME, "a stack name (prod, preview or preview-pr-<N>)")
    )
    parser.add_argument("--outputs", default="-", help="`pulumi stack output --json` file, or - for stdin")
    parser.add_argument("--outcome", default="success", choices=OUTCOMES, help="the `pulumi up` step's outcome")
    parser.add_argument(
        "--sha", default="", help="the deployed commit when it is not GITHUB_SHA (a PR's head, not its merge commit)"
    )
    return parser.parse_args(argv)


def record_deploy(args: argparse.Namespace, outputs_text: str) -> dict[str, Any]:
    outputs = read_outputs(io.StringIO(outputs_text))
    env = {**os.environ, **({"GITHUB_SHA": args.sha} if args.sha else {})}
    return append(database_url(), build_record(args.stack, args.outcome, outputs, env))


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    args = parse(argv)
    # Read once, before any retry: a retried body must not find stdin drained. A missing file
    # (the outputs step did not run) is an empty record, like empty input.
    if args.outputs == "-":
        outputs_text = (stdin or sys.stdin).read()
    else:
        path = Path(args.outputs)
        outputs_text = path.read_text(encoding="utf-8") if path.exists() else ""
    return run_step("deploy-record", critical=False, body=lambda: record_deploy(args, outputs_text))


if __name__ == "__main__":
    sys.exit(main())
