"""Push the drizzle schema into one PostgreSQL schema and decide success ourselves (phase 3).

    python -m steps.migrate --app-dir DIR --schema NAME --timeout SECONDS [--allow-data-loss]
        [--schema-dir packages/shared-schemas] [--drizzle-config drizzle.config.ts]

`drizzle-kit push` cannot be trusted on its own (docs/facts.md): it exits 0 after an SQL error, after a
prompt it could not show (no TTY), and after refusing data loss; it exits 1 *silently* when it
cannot connect. So this step, in order:

1. refuses a DATABASE_URL on port 6543 (Supabase's transaction pooler: push hangs there) before
   anything else, and checks the schema name;
2. ensures node_modules (`steps.install.ensure_installed`) and reads the tables, columns and enums
   the drizzle config declares (`steps.drizzle_tables`: drizzle-kit's own API through the app's
   drizzle-orm; no script in the app);
3. connects with psycopg (auth / missing database: permanent, with what to fix; unreachable:
   transient, retried by the runtime) and takes the schema's migration lock within the timeout,
   so two pushes never run on one schema at once (`steps.migration_lock`: prod's is a row lock no
   preview role can take, a PR schema's an advisory lock);
4. snapshots the schema's tables and columns, runs `drizzle-kit push` (no TTY; `--force` only with
   `--allow-data-loss`) from the schema package's directory with `--config <drizzleConfig>`, as
   the package's own `drizzle-kit push` script runs (a relative `schema` glob resolves as it does
   for the app's developers) in its own process group with what is left of `--timeout`;
5. classifies the output (`steps.drizzle_output`): success needs exit 0, `Changes applied` or
   `No changes detected`, and no `Error`/`error:`/`Warning`. A rename prompt names the
   tables/columns drizzle-kit could not decide about (from the snapshot vs the manifest); refused
   data loss lists drizzle-kit's own statements; an SQL error (pg's `error:` or postgres.js'
   `PostgresError:`) gives its code, table, constraint, and a failed `DROP SCHEMA` says to export
   the pgSchema object; a config that fails while loading is permanent (never retried).
   drizzle-kit before 0.31.10 (the supported range is SUPPORTED_DRIZZLE_KIT, warned about when
   outside) waits at its prompts instead of failing: the push is killed at the question's line;
6. re-reads the catalog (`steps.catalog`) and checks every table, column (type, NOT NULL) and enum
   of the manifest, and warns about foreign keys the push dropped and re-added (names over 63
   bytes: every push).

A timeout kills the push's whole process group, terminates its server backend (a killed client's
`ALTER TABLE` waiting for a lock would otherwise still run once it gets the lock), and fails with
the critical alert "migration timed out: manual intervention"; it is never retried.

Prints `{"schema", "outcome": "applied"|"no_changes", "tables", "columns", "dropped",
"recreated_foreign_keys", "seconds"}`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from steps.args import StepParser, local_path, positive_seconds
from steps.catalog import (
    SchemaState,
    describe_ambiguity,
    dropped_objects,
    foreign_key_churn_warning,
    foreign_keys,
    long_foreign_key_names,
    read_state,
    recreated_foreign_keys,
    verify_state,
)
from steps.drizzle_output import PushOutcome, classify_push, last_words, missing_package_failure, waits_for_an_answer
from steps.drizzle_tables import read_tables
from steps.install import ensure_installed
from steps.migration_lock import MigrationTimeout, connect_checked, holding_migration_lock, terminate_push_backends
from steps.runtime import (
    MissingTool,
    PermanentError,
    ToolTimeout,
    TransientError,
    log,
    run_step,
    run_tool,
    shown,
    warn,
)
from core.database import migrate_check_session, migrate_lock_session, migrate_session
from core.names import DATA_LOSS_DIGEST, DATA_LOSS_DIGEST_LENGTH, PR_SCHEMA
from steps.database import connection_problem, database_url
from steps.schema import validate_schema_name

DEFAULT_SCHEMA_DIR = "packages/shared-schemas"
DEFAULT_DRIZZLE_CONFIG = "drizzle.config.ts"
DRIZZLE_KIT = "node_modules/.bin/drizzle-kit"
DEFAULT_TIMEOUT = 600.0
# The stack setting (Pulumi.yaml) whose value approves one data-losing change on prod.
APPROVAL_KEY = "approveDataLoss"
_ROW_COUNT = re.compile(r"\s*(?:with|which contains) \d+ items")
# drizzle-kit emits DROP SCHEMA for a schema in its schemaFilter that no exported pgSchema declares.
_DROPS_SCHEMA = re.compile(r"cannot drop schema \S+ because other objects depend on it")
# drizzle-kit 0.31.10 is the first to fail at once, saying so, when a prompt has no TTY; older
# ones wait at the prompt (or exit 0 with it unanswered). 1.0 is another CLI (still in beta).
SUPPORTED_DRIZZLE_KIT = ((0, 31, 10), (1, 0, 0))
SUPPORTED_DRIZZLE_KIT_TEXT = ">=0.31.10 <1.0.0"
# `drizzle-kit push --force` exists since 0.23.0 (its release notes: "New flag --force for drizzle-kit
# push"); an older one refuses the flag ("unknown option '--force'"), so it is not given one.
PUSH_FORCE_SINCE = (0, 23, 0)


# --- the step --------------------------------------------------------------------------------


def refuse_pooler(url: str) -> None:
    """A URL migrations cannot use (unparseable, or the transaction pooler) fails at once."""
    problem = connection_problem(url)
    if problem:
        raise PermanentError(
            problem,
            hint="use the direct connection (db.<project>.supabase.co:5432) or the session pooler (port 5432) for migrations",
        )


def approval_digest(value: str) -> str:
    """--approve-data-loss: empty (no approval) or a digest as the refusal prints it."""
    value = value.strip()
    if value and not DATA_LOSS_DIGEST.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"must be the {DATA_LOSS_DIGEST_LENGTH}-hex-digit digest a data-loss refusal printed (config `{APPROVAL_KEY}`), "
            f"got {shown(value, 40)}"
        )
    return value


def _version_tuple(version: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)(-)?", version)
    if not m:
        return None
    numbers = tuple(int(g) for g in m.groups()[:3])
    # A pre-release (1.0.0-beta.2) comes before its release.
    return numbers + ((0,) if m.group(4) else (1,))


def _nearest(package: Path, app_dir: Path, relative: str) -> Path | None:
    """`relative` in the nearest directory from the schema package up to the workspace root (npm
    hoists drizzle-kit to the root; pnpm links it where it is declared)."""
    app_root = app_dir.resolve()
    directory = package.resolve()
    while True:
        if (directory / relative).is_file():
            return directory / relative
        if directory == app_root or directory.parent == directory:
            return None
        directory = directory.parent


def drizzle_kit_version(package: Path, app_dir: Path) -> str | None:
    found = _nearest(package, app_dir, "node_modules/drizzle-kit/package.json")
    try:
        return str(json.loads(found.read_text(encoding="utf-8"))["version"]) if found else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def drizzle_kit_version_note(version: str | None) -> str:
    """'' when `version` is in the supported range, else why it matters (for a warning or an error)."""
    low, high = SUPPORTED_DRIZZLE_KIT
    parsed = _version_tuple(version or "")
    if parsed is not None and low + (1,) <= parsed < high + (0,):
        return ""
    if parsed is not None and parsed < low + (1,):
        return (
            f"; drizzle-kit {version} is older than the supported {SUPPORTED_DRIZZLE_KIT_TEXT}: it waits at prompts "
            "instead of failing, so its questions are read from its output; upgrade drizzle-kit to 0.31.10 or later"
        )
    return f"; drizzle-kit {version or '(unknown version)'} is outside the supported {SUPPORTED_DRIZZLE_KIT_TEXT}"


def accepts_force(version: str | None) -> bool:
    """Whether this drizzle-kit's push takes --force (an unknown version is assumed to)."""
    parsed = _version_tuple(version or "")
    return parsed is None or parsed >= PUSH_FORCE_SINCE


def find_drizzle_kit(package: Path, app_dir: Path) -> Path:
    """The drizzle-kit the schema package's own push script would run."""
    found = _nearest(package, app_dir, DRIZZLE_KIT)
    if found is None:
        raise MissingTool(
            f"drizzle-kit is not installed in {shown(package, quote=False)} (no {DRIZZLE_KIT} up to {shown(app_dir, quote=False)})",
            tool="drizzle-kit",
            hint="add drizzle-kit to the devDependencies of the schema package or of the workspace root, and commit the lockfile",
        )
    return found


def _failure(
    outcome: PushOutcome,
    schema: str,
    manifest: Mapping,
    before: SchemaState,
    allow_data_loss: bool,
    version_note: str = "",
    approval: str = "",
    push_config: str = f"{DEFAULT_SCHEMA_DIR}/{DEFAULT_DRIZZLE_CONFIG}",
) -> Exception:
    if outcome.kind == "prompt":
        what = describe_ambiguity(manifest, before)
        detail = "; ".join(what) if what else f"drizzle-kit wanted to ask about {outcome.prompt}"
        asked = f" (it asked: {outcome.question!r})" if outcome.question else ""
        return PermanentError(
            f"migration of {schema} stopped at a rename question drizzle-kit cannot ask without a TTY{asked}: {detail}; "
            f"nothing was applied{version_note}",
            hint="make the change unambiguous: rename by hand (ALTER TABLE ... RENAME COLUMN old TO new) before the deploy, "
            "or split it into two deploys (add the new column, then drop the old one)",
        )
    if outcome.kind == "no_schema_files":
        return PermanentError(
            f"migration of {schema}: {outcome.message}; nothing was applied",
            hint="drizzle-kit runs in the schema package (`schemaPackage`), so a relative `schema` in the drizzle config "
            "is read from there: fix the path, or write it from the config's own folder, schema: path.join(__dirname, 'src', 'schema.ts')",
        )
    if outcome.kind == "missing_package":
        return missing_package_failure(outcome.message, f"migration of {schema}: drizzle-kit")
    if outcome.kind == "config_error":
        return PermanentError(
            f"migration of {schema} failed before reaching the database: {outcome.message} ({push_config}); not retried",
            hint="the config must load in CI with only DB_SCHEMA and DATABASE_URL set (no cloud-only resources, no "
            f"local files); try it: DB_SCHEMA={schema} DATABASE_URL=... npx drizzle-kit push --config {push_config}",
        )
    if outcome.kind == "data_loss":
        statements = "; ".join(outcome.data_loss)
        digest = data_loss_digest(schema, outcome.data_loss, before)
        other = f" (`{APPROVAL_KEY}` is {approval}, which approves another change)" if approval else ""
        hint = (
            f"if losing that data is intended, approve exactly this change: `pulumi config set {APPROVAL_KEY} {digest}` "
            "on this stack and re-run the deploy (once it is applied the value approves nothing else: clear it); "
            "otherwise give the new column a default, keep the column/table or copy its data first"
        )
        if allow_data_loss:
            hint = "drizzle-kit still asked although --force was given; apply the change by hand"
        return PermanentError(
            f"migration of {schema} would lose data and was not applied: {statements or outcome.question}{version_note}; "
            f"data-loss digest {digest}{other}",
            hint=hint,
        )
    if outcome.kind == "sql_error" and _DROPS_SCHEMA.fullmatch(outcome.message):
        return PermanentError(
            f"migration of {schema}: drizzle-kit created the tables, then tried to drop schema {schema} "
            f"({outcome.message}): the schema file does not export its pgSchema object, so drizzle-kit "
            "believes the schema should not exist",
            hint="export the pgSchema object from the schema file drizzle.config.ts reads, e.g. "
            "`export const dbSchema = pgSchema(process.env.DB_SCHEMA!);` next to the tables built on it, then re-run",
        )
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


def data_loss_digest(schema: str, statements: Sequence[str], before: SchemaState) -> str:
    """What `approveDataLoss` must equal to apply these data-losing statements to this schema.

    It covers the schema, drizzle-kit's statements (their row counts left out: rows keep coming
    while a person decides) and the tables and columns the change starts from, so it approves one
    change: once applied, the schema it starts from is gone and the value matches nothing else.
    """
    material = {
        "schema": schema,
        "statements": [_ROW_COUNT.sub("", s) for s in statements],
        "tables": {t: sorted(c.items()) for t, c in sorted(before.tables.items())},
        "enums": dict(sorted(before.enums.items())),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:DATA_LOSS_DIGEST_LENGTH]


@dataclass(frozen=True)
class MigrateArgs:
    app_dir: Path
    schema: str
    timeout: float
    allow_data_loss: bool
    approve_data_loss: str = ""
    schema_dir: Path = Path(DEFAULT_SCHEMA_DIR)
    """The schema package, relative to app_dir."""
    drizzle_config: Path = Path(DEFAULT_DRIZZLE_CONFIG)
    """The drizzle config, relative to schema_dir."""

    @property
    def config_path(self) -> Path:
        return self.app_dir / self.schema_dir / self.drizzle_config


def migrate(args: MigrateArgs) -> dict:
    started = time.monotonic()
    schema = validate_schema_name(args.schema)
    url = database_url()
    refuse_pooler(url)
    app_dir = args.app_dir
    config = args.config_path
    if not config.is_file():
        raise PermanentError(
            f"{shown(config, quote=False)} does not exist",
            hint="set `schemaPackage` (relative to `appDir`) and `drizzleConfig` (relative to it) to the app's drizzle config",
        )
    if args.allow_data_loss and not PR_SCHEMA.fullmatch(schema):
        warn(f"--allow-data-loss on {schema}, which is not a PR schema: data-losing changes will be applied")
    ensure_installed(app_dir)
    package = app_dir / args.schema_dir
    drizzle_kit = find_drizzle_kit(package, app_dir)
    version = drizzle_kit_version(package, app_dir)
    version_note = drizzle_kit_version_note(version)
    if version_note:
        warn(f"migrate{version_note}")
    manifest = read_tables(package, args.drizzle_config, schema)

    with connect_checked(url, application_name=migrate_lock_session(schema)) as conn:
        deadline = time.monotonic() + args.timeout
        with holding_migration_lock(conn, url, schema, deadline, args.timeout):
            before = read_state(conn, schema)
            keys_before = foreign_keys(conn, schema)

            def push(force: bool) -> PushOutcome:
                app_name = migrate_session(schema, secrets.token_hex(4))
                argv = [str(drizzle_kit), "push", "--config", str(args.drizzle_config)]
                if force and accepts_force(version):
                    argv.append("--force")
                remaining = max(1.0, deadline - time.monotonic())
                try:
                    result = run_tool(
                        argv,
                        cwd=package,
                        env={"DB_SCHEMA": schema, "DATABASE_URL": url, "PGAPPNAME": app_name, "FORCE_COLOR": "0"},
                        timeout=remaining,
                        what="drizzle-kit push",
                        stop_when=waits_for_an_answer,
                    )
                except ToolTimeout as exc:
                    ended = terminate_push_backends(conn, app_name)
                    raise MigrationTimeout(
                        f"drizzle-kit push into {schema} did not finish within {args.timeout:.0f}s and was killed"
                        f" ({ended} server session(s) of it terminated){last_words(exc.output)}",
                        hint="look for locks on the schema's tables (pg_locks / pg_stat_activity), check which "
                        "statements were applied (push is not transactional), fix by hand, then re-run the deploy",
                    ) from None
                if result.stopped_at:
                    # Killed at its question: it may still hold a session open on the server.
                    terminate_push_backends(conn, app_name)
                return classify_push(result.returncode, result.output)

            outcome = push(force=args.allow_data_loss)
            if outcome.kind == "data_loss" and not args.allow_data_loss and args.approve_data_loss:
                digest = data_loss_digest(schema, outcome.data_loss, before)
                if hmac.compare_digest(args.approve_data_loss, digest):
                    warn(
                        f"migrate: {APPROVAL_KEY} {digest} approves this data loss on {schema}: "
                        f"{'; '.join(outcome.data_loss)}; applying it (clear {APPROVAL_KEY} afterwards)"
                    )
                    outcome = push(force=True)
            if outcome.kind == "silent_exit":
                # drizzle-kit says nothing when it cannot connect; ask the database ourselves.
                connect_checked(url, application_name=migrate_check_session(schema)).close()
                raise TransientError(
                    f"{outcome.message}; the database accepts our connections, so it failed while pulling the schema",
                    hint="re-run the deploy; if it persists run drizzle-kit push locally against the database",
                )
            if outcome.kind == "data_loss" and args.allow_data_loss and not accepts_force(version):
                raise PermanentError(
                    f"migration of {schema} would lose data and was not applied: {'; '.join(outcome.data_loss) or outcome.question}; "
                    f"drizzle-kit {version} is older than {'.'.join(map(str, PUSH_FORCE_SINCE))} and has no push --force",
                    hint="upgrade drizzle-kit to approve a data-losing change, or apply the change by hand",
                )
            if not outcome.ok:
                raise _failure(
                    outcome, schema, manifest, before, args.allow_data_loss, version_note, args.approve_data_loss, str(config)
                )
            after = read_state(conn, schema)
            recreated = recreated_foreign_keys(keys_before, foreign_keys(conn, schema))

    problems = verify_state(manifest, after, schema)
    if problems:
        raise PermanentError(
            f"drizzle-kit push reported {outcome.message} but {schema} does not match the schema file: {'; '.join(problems)}",
            hint="push is not transactional: check the schema by hand, fix it, then re-run",
        )
    dropped = dropped_objects(before, after)
    if dropped:
        warn(f"migrate: data-losing changes applied to {schema}: dropped {', '.join(dropped)}")
    churn = foreign_key_churn_warning(schema, recreated, long_foreign_key_names(manifest))
    if churn:
        warn(churn)
    columns = sum(len(t["columns"]) for t in manifest["tables"])
    log(f"migrate: {schema}: {outcome.message}; {len(manifest['tables'])} tables and {columns} columns verified")
    return {
        "schema": schema,
        "outcome": outcome.kind,
        "tables": len(manifest["tables"]),
        "columns": columns,
        "dropped": dropped,
        "recreated_foreign_keys": recreated,
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
    parser.add_argument(
        "--approve-data-loss",
        default="",
        type=approval_digest,
        help=f"apply the data-losing change whose digest (printed by the refusal) this is (`{APPROVAL_KEY}`)",
    )
    parser.add_argument("--schema-dir", type=local_path, default=Path(DEFAULT_SCHEMA_DIR), help="the schema package, relative to --app-dir")
    parser.add_argument(
        "--drizzle-config", type=local_path, default=Path(DEFAULT_DRIZZLE_CONFIG), help="the drizzle config, relative to --schema-dir"
    )
    ns = parser.parse_args(argv)
    return MigrateArgs(
        app_dir=ns.app_dir,
        schema=ns.schema,
        timeout=ns.timeout,
        allow_data_loss=ns.allow_data_loss,
        approve_data_loss=ns.approve_data_loss,
        schema_dir=ns.schema_dir,
        drizzle_config=ns.drizzle_config,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Only connection failures are transient here; a timeout is a PermanentError (never retried).
    return run_step("migrate", critical=True, body=lambda: migrate(args), attempts=3, deadline=args.timeout * 3 + 120)


if __name__ == "__main__":
    sys.exit(main())
