"""The tables, columns and enums an app's drizzle config declares, as drizzle-kit itself sees them.

Library of `steps.migrate`: `read_tables(package, config, schema)` runs `steps/drizzle_tables.cjs`
under node in the schema package's directory, where drizzle-kit push runs too. That script loads the config and its schema files with drizzle-kit's
own TypeScript loader and the app's installed drizzle-orm, and asks drizzle-kit/api's
`generateDrizzleJson` for the snapshot `push` diffs against. The app carries no script of ours.

The result is what `steps.catalog.verify_state` checks the catalog against after a push:
`{"tables": [{"name", "schema", "columns": [{"name", "type", "notNull"}]}], "enums": [...], ...}`.
Tables declared outside the target schema (plain `pgTable`, which lands in `public`) fail here,
before anything is pushed, with the one edit that fixes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from steps import tool_output
from steps.runtime import PermanentError, ToolTimeout, run_tool, shown

SCRIPT = Path(__file__).resolve().with_name("drizzle_tables.cjs")
TIMEOUT = 180.0
# The config may insist on DATABASE_URL while loading; the tables never depend on it, so the
# real (secret) URL never reaches this process.
PLACEHOLDER_URL = "postgres://drizzle-tables:unused@127.0.0.1:1/unused"
_MISSING_MODULE = re.compile(r"Cannot find module '(?P<module>[^']+)'")

_HINTS = {
    "no_drizzle_kit": "list drizzle-kit in the devDependencies of the schema package or the workspace root",
    "no_drizzle_orm": "declare drizzle-orm in the devDependencies of the workspace root's package.json, next to "
    "drizzle-kit and in the schema package's version (not only in the schema package: the package manager may then "
    "nest it where drizzle-kit does not look), and commit the lockfile",
    "no_loader": "use drizzle-kit 0.31 (it loads TypeScript with tsx)",
    "config": "the drizzle config must load with only DB_SCHEMA and DATABASE_URL set (no cloud-only resources); fix it",
    "no_schema_files": "drizzle-kit runs in the schema package (`schemaPackage`), so the config's `schema` is read "
    "from there: fix the path or glob, or write it from the config's own folder, path.join(__dirname, 'src', 'schema.ts')",
    "schema": "the schema file does not load under node with drizzle-kit's own TypeScript loader: fix that error in it",
    "kit_too_old": "upgrade drizzle-kit (and drizzle-orm with it) to 0.21 or later in the schema package: the pipeline "
    "runs `drizzle-kit push --config`, which older ones do not have, and reads the tables through its API",
}


def _public_tables_problem(manifest: dict, schema: str, config: Path) -> str | None:
    """Plain `pgTable`s land in `public`, and `search_path` cannot move them (docs/facts.md)."""
    stray = sorted({t["name"] for t in manifest["tables"] if t["schema"] != schema})
    if not stray:
        return None
    where = sorted({t["schema"] for t in manifest["tables"] if t["schema"] != schema})
    return (
        f"{config.name} declares table(s) {', '.join(stray[:8])}{' ...' if len(stray) > 8 else ''} in schema "
        f"{', '.join(where)}, not in the stack's schema {schema}: every stack deploys into its own schema, so declare "
        "them in one pgSchema named by DB_SCHEMA and export it, e.g. `export const appSchema = "
        "pgSchema(process.env.DB_SCHEMA!); export const users = appSchema.table('users', {...})` instead of "
        "pgTable('users', ...), and list it in the config (`schemaFilter: [process.env.DB_SCHEMA!]`). search_path "
        "cannot do it: drizzle-kit writes foreign keys as REFERENCES \"public\".<table> and the push fails half-way"
    )


def read_tables(package: Path, config_name: Path, schema: str) -> dict:
    """The manifest of the drizzle config `config_name` (relative to the schema `package`) for the
    stack's `schema`; a one-line PermanentError if it cannot be read."""
    config = Path(package) / config_name
    if not config.is_file():
        raise PermanentError(
            f"drizzle config {shown(config, quote=False)} does not exist",
            hint="set `drizzleConfig` (relative to `schemaPackage`) to the app's drizzle config",
        )
    try:
        result = run_tool(
            ["node", str(SCRIPT), str(config_name)],
            cwd=package,
            env={"DB_SCHEMA": schema, "DATABASE_URL": PLACEHOLDER_URL},
            timeout=TIMEOUT,
            what="drizzle tables",
        )
    except ToolTimeout as exc:
        raise PermanentError(str(exc), hint="the drizzle config or a schema file hangs while loading") from None
    except OSError as exc:
        raise PermanentError(f"node is not runnable: {exc}", hint="install Node.js 20 and put it on PATH") from None
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # The config (or a schema file) ended the process while loading, e.g. process.exit(1).
        answer = {"error": "config", "message": f"exited {result.returncode} while loading: {tool_output.summary(result.output)}"}
    if "error" in answer:
        kind = str(answer["error"])
        missing = _MISSING_MODULE.search(str(answer.get("message", "")))
        if kind == "schema" and missing and not missing["module"].startswith((".", "/")):
            # A schema file that cannot import its ORM: the package sits where node does not look.
            package = "/".join(missing["module"].split("/")[: 2 if missing["module"].startswith("@") else 1])
            answer = {"error": "no_drizzle_orm" if package == "drizzle-orm" else kind,
                      "message": f"{answer['message']}: node cannot find the package {package} from the workspace root"}
            kind = str(answer["error"])
        message = shown(str(answer.get("message", kind)), 400, quote=False)
        if kind == "config":
            message = f"the drizzle config could not load, so the migration failed before reaching the database: {message}; not retried"
        raise PermanentError(f"{config_name}: {message}", hint=_HINTS.get(kind, "fix the drizzle config or schema file it names"))
    problem = _public_tables_problem(answer, schema, config)
    if problem:
        raise PermanentError(problem)
    if not answer["tables"]:
        raise PermanentError(
            f"{config.name} declares no tables (files {', '.join(answer['files'])})",
            hint="export the tables (and their pgSchema) from the files the config's `schema` names",
        )
    return answer
