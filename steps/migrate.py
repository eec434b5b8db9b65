"""Push the drizzle schema into one PostgreSQL schema and decide success ourselves (phase 3).

    python -m steps.migrate --app-dir DIR --schema NAME --timeout SECONDS [--allow-data-loss]

`drizzle-kit push` cannot be trusted on its own (FACTS.md): it exits 0 after an SQL error, after a
prompt it could not show (no TTY), and after refusing data loss; it exits 1 *silently* when it
cannot connect. So this step, in order:

1. refuses a DATABASE_URL on port 6543 (Supabase's transaction pooler: push hangs there) before
   anything else, and checks the schema name;
2. ensures node_modules (`steps.install.ensure_installed`) and reads the schema file's manifest
   (`scripts/manifest.ts`: tables, columns, enums);
3. connects with psycopg (auth / missing database: permanent, with what to fix; unreachable:
   transient, retried by the runtime) and takes a session advisory lock keyed by the schema name
   (`hashtextextended('webstack-migrate:' || schema, 0)`), polling `pg_try_advisory_lock` within
   the timeout, so two pushes never run on one schema at once;
4. snapshots the schema's tables and columns, runs `drizzle-kit push` (no TTY; `--force` only with
   `--allow-data-loss`) in its own process group with what is left of `--timeout`;
5. classifies the output (`classify_push`): success needs exit 0, `Changes applied` or
   `No changes detected`, and no `Error`/`error:`/`Warning`. A rename prompt names the
   tables/columns drizzle-kit could not decide about (from the snapshot vs the manifest); refused
   data loss lists drizzle-kit's own statements; an SQL error gives its code, table, constraint;
6. re-reads the catalog and checks every table, column (type, NOT NULL) and enum of the manifest.

A timeout kills the push's whole process group, terminates its server backend (a killed client's
`ALTER TABLE` waiting for a lock would otherwise still run once it gets the lock), and fails with
the critical alert "migration timed out: manual intervention"; it is never retried.

Prints `{"schema", "outcome": "applied"|"no_changes", "tables", "columns", "dropped", "seconds"}`.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from steps.args import StepParser, local_path, positive_seconds
from steps.install import ensure_installed
from steps.runtime import (
    PermanentError,
    ToolTimeout,
    TransientError,
    log,
    run_step,
    run_tool,
    shown,
    warn,
)
from components.names import PR_SCHEMA
from steps.database import connect, connection_problem, database_url
from steps.schema import validate_schema_name

PUSH_CONFIG = "packages/shared-schemas/drizzle.config.ts"
MANIFEST_SCRIPT = "packages/shared-schemas/scripts/manifest.ts"
DRIZZLE_KIT = "node_modules/.bin/drizzle-kit"
TSX = "node_modules/.bin/tsx"
MANIFEST_TIMEOUT = 180.0
DEFAULT_TIMEOUT = 600.0
TIMEOUT_ALERT = "migration timed out: manual intervention"
LOCK_NAMESPACE = "webstack-migrate:"


class MigrationTimeout(PermanentError):
    """The push (or the wait for another push's lock) ran past --timeout. Never retried: a hung
    migration may have left the schema half-changed, and a person has to look first."""

    alert_title = TIMEOUT_ALERT


# --- output classification (pure, tested on recorded drizzle-kit 0.31.11 output) -------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RESOLVER = re.compile(r"\bat (\w+?)Resolver\b")
_PROMPT_FN = re.compile(r"\bat (prompt\w+)\b")
_SQL_FIELD = re.compile(r"\s*(code|detail|hint|schema|table|column|constraint|severity): '(.*)',?")


@dataclass(frozen=True)
class PushOutcome:
    kind: str
    """applied | no_changes | prompt | data_loss | sql_error | error | warning | silent_exit | unknown"""
    ok: bool
    message: str = ""
    prompt: str | None = None
    """What drizzle-kit wanted to ask about: columns, tables, enums, schemas, ..."""
    data_loss: tuple[str, ...] = ()
    sql: Mapping[str, str] = field(default_factory=dict)


def clean_output(output: str) -> str:
    """Drop the spinner's escape codes and carriage returns."""
    return _ANSI.sub("", output).replace("\r", "\n")


def _data_loss_statements(lines: Sequence[str]) -> tuple[str, ...]:
    found: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if "Found data-loss statements" in stripped:
            inside = True
            continue
        if inside:
            if stripped.startswith("·"):
                found.append(stripped.lstrip("·").strip())
            elif stripped:
                inside = False
    return tuple(found)


def classify_push(returncode: int, output: str) -> PushOutcome:
    """What a `drizzle-kit push` run did, from its exit code and combined output."""
    text = clean_output(output)
    lines = text.splitlines()
    data_loss = _data_loss_statements(lines)
    if "Interactive prompts require a TTY" in text:
        if data_loss:
            return PushOutcome("data_loss", False, "drizzle-kit refused data-loss statements", data_loss=data_loss)
        resolver = _RESOLVER.search(text)
        prompt_fn = _PROMPT_FN.search(text)
        prompt = resolver.group(1) if resolver else (prompt_fn.group(1) if prompt_fn else "unknown")
        return PushOutcome("prompt", False, f"drizzle-kit needs an answer about {prompt} (a possible rename)", prompt=prompt)
    sql_error = next((line for line in lines if line.startswith("error: ")), None)
    if sql_error:
        fields = {m.group(1): m.group(2) for line in lines if (m := _SQL_FIELD.fullmatch(line))}
        return PushOutcome("sql_error", False, sql_error[len("error: ") :].strip(), sql=fields)
    error = next((line.strip() for line in lines if re.search(r"\bError\b|\berror:", line)), None)
    if error:
        return PushOutcome("error", False, error)
    if returncode != 0:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
        return PushOutcome("silent_exit", False, f"drizzle-kit push exited {returncode} with no error message (last line: {last})")
    warning = next((line.strip() for line in lines if "Warning" in line), None)
    if warning:
        return PushOutcome("warning", False, f"drizzle-kit push printed a warning: {warning}", data_loss=data_loss)
    if any("Changes applied" in line for line in lines):
        return PushOutcome("applied", True, "changes applied")
    if any("No changes detected" in line for line in lines):
        return PushOutcome("no_changes", True, "no changes detected")
    last = next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
    return PushOutcome("unknown", False, f"drizzle-kit push ended without saying it applied anything (last line: {last})")


# --- the catalog and the manifest ------------------------------------------------------------

Columns = dict[str, tuple[str, bool]]  # column -> (formatted type, NOT NULL)


@dataclass(frozen=True)
class SchemaState:
    tables: dict[str, Columns]
    enums: dict[str, list[str]]


def read_state(conn, schema: str) -> SchemaState:
    tables: dict[str, Columns] = {}
    rows = conn.execute(
        """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
        ORDER BY c.relname, a.attnum
        """,
        (schema,),
    ).fetchall()
    for table, column, type_, not_null in rows:
        cols = tables.setdefault(table, {})
        if column is not None:
            cols[column] = (type_, not_null)
    enums: dict[str, list[str]] = {}
    for name, label in conn.execute(
        """
        SELECT t.typname, e.enumlabel FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE n.nspname = %s ORDER BY t.typname, e.enumsortorder
        """,
        (schema,),
    ).fetchall():
        enums.setdefault(name, []).append(label)
    return SchemaState(tables, enums)


_TYPE_ALIASES = {
    "varchar": "character varying",
    "char": "character",
    "timestamptz": "timestamp with time zone",
    "int": "integer",
    "int4": "integer",
    "serial": "integer",
    "int8": "bigint",
    "bigserial": "bigint",
    "int2": "smallint",
    "smallserial": "smallint",
    "bool": "boolean",
    "float8": "double precision",
    "float4": "real",
    "decimal": "numeric",
}
_TYPE_SHAPE = re.compile(r"(?P<base>[a-z_][a-z0-9_ ]*?)\s*(?P<args>\([^)]*\))?\s*(?P<tz>with(?:out)? time zone)?")


def normalize_type(type_: str, schema: str) -> str:
    """One spelling for drizzle's `getSQLType()` and Postgres' `format_type()` of a column type."""
    t = " ".join(type_.lower().replace('"', "").split())
    if t.startswith(f"{schema}."):
        t = t[len(schema) + 1 :]
    suffix = ""
    while t.endswith("[]"):
        suffix += "[]"
        t = t[:-2].rstrip()
    m = _TYPE_SHAPE.fullmatch(t)
    if not m:
        return t + suffix
    base = _TYPE_ALIASES.get(m.group("base"), m.group("base"))
    args = (m.group("args") or "").replace(" ", "")
    tz = m.group("tz") or ""
    if base in ("timestamp", "time") and not tz:
        tz = "without time zone"
    return " ".join(part for part in (base + args, tz) if part) + suffix


def verify_state(manifest: Mapping, state: SchemaState, schema: str) -> list[str]:
    """Every table, column (type, NOT NULL) and enum of the manifest, as found in the catalog."""
    problems: list[str] = []
    for table in manifest["tables"]:
        name = table["name"]
        if table.get("schema", schema) != schema:
            problems.append(f"table {name} is declared in schema {table.get('schema')}, not {schema}")
            continue
        columns = state.tables.get(name)
        if columns is None:
            problems.append(f"table {schema}.{name} is missing")
            continue
        for column in table["columns"]:
            found = columns.get(column["name"])
            where = f"{schema}.{name}.{column['name']}"
            if found is None:
                problems.append(f"column {where} is missing")
                continue
            db_type, not_null = found
            if normalize_type(db_type, schema) != normalize_type(column["type"], schema):
                problems.append(f"column {where} is {db_type} in the database but {column['type']} in the schema file")
            if bool(column["notNull"]) != not_null:
                want = "NOT NULL" if column["notNull"] else "nullable"
                problems.append(f"column {where} should be {want}")
    for enum in manifest.get("enums", []):
        values = state.enums.get(enum["name"])
        if values is None:
            problems.append(f"enum {schema}.{enum['name']} is missing")
        elif values != list(enum["values"]):
            problems.append(f"enum {schema}.{enum['name']} has values {values}, the schema file {enum['values']}")
    return problems


def describe_ambiguity(manifest: Mapping, state: SchemaState) -> list[str]:
    """What drizzle-kit could not decide: new vs vanished tables, and columns per table."""
    wanted = {t["name"]: [c["name"] for c in t["columns"]] for t in manifest["tables"]}
    parts: list[str] = []
    new_tables = sorted(set(wanted) - set(state.tables))
    gone_tables = sorted(set(state.tables) - set(wanted))
    if new_tables and gone_tables:
        parts.append(f"tables {', '.join(new_tables)} (new in the schema file) vs {', '.join(gone_tables)} (only in the database)")
    for table in sorted(set(wanted) & set(state.tables)):
        new = [c for c in wanted[table] if c not in state.tables[table]]
        gone = [c for c in state.tables[table] if c not in wanted[table]]
        if new and gone:
            parts.append(
                f"table {table}: column {', '.join(new)} (new in the schema file) vs "
                f"{', '.join(gone)} (only in the database)"
            )
    return parts


def dropped_objects(before: SchemaState, after: SchemaState) -> list[str]:
    dropped = [f"table {t}" for t in sorted(set(before.tables) - set(after.tables))]
    for table in sorted(set(before.tables) & set(after.tables)):
        dropped += [f"column {table}.{c}" for c in before.tables[table] if c not in after.tables[table]]
    return dropped


# --- the database connection and the lock ----------------------------------------------------


def refuse_pooler(url: str) -> None:
    """A URL migrations cannot use (unparseable, or the transaction pooler) fails at once."""
    problem = connection_problem(url)
    if problem:
        raise PermanentError(
            problem,
            hint="use the direct connection (db.<project>.supabase.co:5432) or the session pooler (port 5432) for migrations",
        )


def connect_checked(url: str, *, application_name: str):
    """Connect, turning a failure into an error that says what is wrong with the connection."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return connect(url, application_name=application_name)
    except psycopg.OperationalError as exc:
        params = conninfo_to_dict(url)
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}/{params.get('dbname', '')}"
        text = " ".join(str(exc).split())
        if "password authentication failed" in text or "authentication" in text or (exc.sqlstate or "").startswith("28"):
            raise PermanentError(
                f"the database at {where} refused the login: {text}",
                hint="check the user and password in DATABASE_URL (the CI secret)",
            ) from exc
        if "does not exist" in text or exc.sqlstate == "3D000":
            raise PermanentError(
                f"the database at {where} does not exist: {text}",
                hint="create the database or fix its name in DATABASE_URL",
            ) from exc
        raise TransientError(
            f"cannot reach the database at {where}: {text}",
            hint="check that the host and port in DATABASE_URL are right and reachable from CI",
        ) from exc


def lock_key(conn, schema: str) -> int:
    return conn.execute("SELECT hashtextextended(%s, 0)", (LOCK_NAMESPACE + schema,)).fetchone()[0]


def acquire_lock(conn, schema: str, deadline: float, timeout: float) -> int:
    """Hold the schema's migration lock on `conn` (session-level); wait for it until `deadline`."""
    key = lock_key(conn, schema)
    waited = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        if not waited:
            holders = conn.execute(
                "SELECT l.pid, a.application_name FROM pg_locks l"
                " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND (l.classid::bigint << 32) | l.objid::bigint = %s::bigint",
                (key,),
            ).fetchall()
            log(f"migrate: another migration of schema {schema} holds the lock ({holders}); waiting")
            waited = True
        if time.monotonic() >= deadline:
            raise MigrationTimeout(
                f"waited {timeout:.0f}s for another migration of schema {schema} to release its lock",
                hint="a migration of this schema is still running or hung: find it in pg_stat_activity "
                "(application_name webstack-migrate:*), end it, check the schema, then re-run the deploy",
            )
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    return key


def terminate_push_backends(conn, application_name: str) -> int:
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    ).fetchall()
    return len(rows)


# --- the step --------------------------------------------------------------------------------


def read_manifest(app_dir: Path, schema: str) -> dict:
    try:
        result = run_tool([TSX, MANIFEST_SCRIPT], cwd=app_dir, env={"DB_SCHEMA": schema}, timeout=MANIFEST_TIMEOUT, what="schema manifest")
    except ToolTimeout as exc:
        raise PermanentError(str(exc), hint="the schema file does not load; run the manifest script locally") from None
    start = result.output.find("{")
    try:
        manifest, _ = json.JSONDecoder().raw_decode(result.output[start:]) if start >= 0 else (None, 0)
    except ValueError:
        manifest = None
    if not result.ok or not isinstance(manifest, dict) or not isinstance(manifest.get("tables"), list):
        raise PermanentError(
            f"the schema manifest ({MANIFEST_SCRIPT}) failed (exit {result.returncode})",
            hint="the drizzle schema file does not load: see the output above and fix it",
        )
    return manifest


def _failure(outcome: PushOutcome, schema: str, manifest: Mapping, before: SchemaState, allow_data_loss: bool) -> Exception:
    if outcome.kind == "prompt":
        what = describe_ambiguity(manifest, before)
        detail = "; ".join(what) if what else f"drizzle-kit wanted to ask about {outcome.prompt}"
        return PermanentError(
            f"migration of {schema} stopped at a rename question drizzle-kit cannot ask without a TTY: {detail}; nothing was applied",
            hint="make the change unambiguous: rename by hand (ALTER TABLE ... RENAME COLUMN old TO new) before the deploy, "
            "or split it into two deploys (add the new column, then drop the old one)",
        )
    if outcome.kind == "data_loss":
        statements = "; ".join(outcome.data_loss)
        # No deploy setting approves data loss (only previews pass --allow-data-loss): a person runs it.
        hint = (
            "if losing that data is intended, a person applies it by hand, python -m steps.migrate --app-dir APP_DIR "
            f"--schema {schema} --allow-data-loss with that database's DATABASE_URL, then re-runs the deploy; "
            "otherwise give the new column a default, keep the column/table or copy its data first"
        )
        if allow_data_loss:
            hint = "drizzle-kit still asked although --force was given; apply the change by hand"
        return PermanentError(f"migration of {schema} would lose data and was not applied: {statements}", hint=hint)
    if outcome.kind == "sql_error":
        sql = outcome.sql
        where = ", ".join(f"{k} {sql[k]}" for k in ("table", "column", "constraint") if sql.get(k))
        detail = f" ({sql['detail']})" if sql.get("detail") else ""
        return PermanentError(
            f"migration of {schema} failed in SQL: {outcome.message}{detail} [code {sql.get('code', '?')}{', ' + where if where else ''}]",
            hint="push is not transactional: the statements before this one were applied. Fix the data or the "
            "schema file, check the schema by hand, then re-run",
        )
    if outcome.kind == "warning" and outcome.data_loss:
        return PermanentError(f"migration of {schema}: {outcome.message}: {'; '.join(outcome.data_loss)}")
    return PermanentError(
        f"migration of {schema} failed: {outcome.message}",
        hint="see drizzle-kit's output above; the schema file or the database needs a fix",
    )


@dataclass(frozen=True)
class MigrateArgs:
    app_dir: Path
    schema: str
    timeout: float
    allow_data_loss: bool


def migrate(args: MigrateArgs) -> dict:
    started = time.monotonic()
    schema = validate_schema_name(args.schema)
    url = database_url()
    refuse_pooler(url)
    app_dir = args.app_dir
    if not (app_dir / PUSH_CONFIG).is_file():
        raise PermanentError(
            f"{shown(app_dir / PUSH_CONFIG, quote=False)} does not exist", hint="pass the app's workspace root as --app-dir"
        )
    if args.allow_data_loss and not PR_SCHEMA.fullmatch(schema):
        warn(f"--allow-data-loss on {schema}, which is not a PR schema: data-losing changes will be applied")
    ensure_installed(app_dir)
    manifest = read_manifest(app_dir, schema)

    with connect_checked(url, application_name=f"webstack-migrate-lock:{schema}") as conn:
        deadline = time.monotonic() + args.timeout
        key = acquire_lock(conn, schema, deadline, args.timeout)
        try:
            before = read_state(conn, schema)
            app_name = f"webstack-migrate:{schema}:{secrets.token_hex(4)}"
            argv = [DRIZZLE_KIT, "push", "--config", PUSH_CONFIG]
            if args.allow_data_loss:
                argv.append("--force")
            remaining = max(1.0, deadline - time.monotonic())
            try:
                result = run_tool(
                    argv,
                    cwd=app_dir,
                    env={"DB_SCHEMA": schema, "DATABASE_URL": url, "PGAPPNAME": app_name, "FORCE_COLOR": "0"},
                    timeout=remaining,
                    what="drizzle-kit push",
                )
            except ToolTimeout:
                ended = terminate_push_backends(conn, app_name)
                raise MigrationTimeout(
                    f"drizzle-kit push into {schema} did not finish within {args.timeout:.0f}s and was killed"
                    f" ({ended} server session(s) of it terminated)",
                    hint="look for locks on the schema's tables (pg_locks / pg_stat_activity), check which "
                    "statements were applied (push is not transactional), fix by hand, then re-run the deploy",
                ) from None
            outcome = classify_push(result.returncode, result.output)
            if outcome.kind == "silent_exit":
                # drizzle-kit says nothing when it cannot connect; ask the database ourselves.
                connect_checked(url, application_name=f"webstack-migrate-check:{schema}").close()
                raise TransientError(
                    f"{outcome.message}; the database accepts our connections, so it failed while pulling the schema",
                    hint="re-run the deploy; if it persists run drizzle-kit push locally against the database",
                )
            if not outcome.ok:
                raise _failure(outcome, schema, manifest, before, args.allow_data_loss)
            after = read_state(conn, schema)
        finally:
            # Closing the connection releases the lock too; a broken one must not hide the error.
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    problems = verify_state(manifest, after, schema)
    if problems:
        raise PermanentError(
            f"drizzle-kit push reported {outcome.message} but {schema} does not match the schema file: {'; '.join(problems)}",
            hint="push is not transactional: check the schema by hand, fix it, then re-run",
        )
    dropped = dropped_objects(before, after)
    if dropped:
        warn(f"migrate: data-losing changes applied to {schema}: dropped {', '.join(dropped)}")
    columns = sum(len(t["columns"]) for t in manifest["tables"])
    log(f"migrate: {schema}: {outcome.message}; {len(manifest['tables'])} tables and {columns} columns verified")
    return {
        "schema": schema,
        "outcome": outcome.kind,
        "tables": len(manifest["tables"]),
        "columns": columns,
        "dropped": dropped,
        "seconds": round(time.monotonic() - started, 2),
    }


def parse(argv: list[str] | None = None) -> MigrateArgs:
    parser = StepParser(prog="python -m steps.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True, type=local_path, help="npm workspace root of the app")
    parser.add_argument("--schema", required=True, help="target PostgreSQL schema")
    parser.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, help="seconds for lock wait plus push; then killed"
    )
    parser.add_argument("--allow-data-loss", action="store_true", help="apply data-losing changes (drizzle-kit --force)")
    ns = parser.parse_args(argv)
    return MigrateArgs(app_dir=ns.app_dir, schema=ns.schema, timeout=ns.timeout, allow_data_loss=ns.allow_data_loss)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Only connection failures are transient here; a timeout is a PermanentError (never retried).
    return run_step("migrate", critical=True, body=lambda: migrate(args), attempts=3, deadline=args.timeout * 3 + 120)


if __name__ == "__main__":
    sys.exit(main())
