"""The one source edit the pipeline asks of an app, made by a command: tables into a pgSchema.

    python -m tools.pgschema --app-dir DIR [--schema-package db] [--drizzle-config drizzle.config.ts] [--write]

Every stack deploys into a PostgreSQL schema of its own (prod `app`, PR N `app_pr_N`), so the tables
must be declared in a `pgSchema` named by DB_SCHEMA: plain `pgTable`s land in `public`, and
search_path cannot move them (drizzle-kit writes foreign keys as REFERENCES "public".<table>).

This reads the schema files the drizzle config names (as drizzle-kit does: steps/drizzle_tables.cjs)
and rewrites them:

- `pgTable(` -> `appSchema.table(`, `pgEnum(` -> `appSchema.enum(`, and likewise for views,
  materialized views and sequences; the names no longer used leave the pg-core import;
- `appSchema` is declared once, `export const appSchema = pgSchema(process.env.DB_SCHEMA!)`, in a new
  file `pg-schema.ts` beside the schema files, which each rewritten file imports and re-exports
  (drizzle-kit must see the pgSchema among the exports it reads, or it drops the schema);
- the config gets `schemaFilter: [process.env.DB_SCHEMA!]` when it has no schemaFilter.

It prints the unified diff and changes nothing unless `--write` is given; with `--write` it then
reads the tables again the way the migration does and says whether the stack's schema holds them.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SCHEMA_FILE = "pg-schema"
# drizzle-orm/pg-core's top-level builders and the pgSchema method each becomes.
BUILDERS = {"pgTable": "table", "pgEnum": "enum", "pgView": "view", "pgMaterializedView": "materializedView", "pgSequence": "sequence"}
_PG_CORE_IMPORT = re.compile(r"import\s*\{(?P<names>[^}]*)\}\s*from\s*(?P<quote>['\"])drizzle-orm/pg-core(?P=quote)\s*;?")
_FROM_CLAUSE = re.compile(r"from\s*['\"][^'\"]+['\"]\s*;?\s*$")
_CONFIG_OBJECT = re.compile(r"(defineConfig\s*\(\s*\{|export\s+default\s*\{|module\.exports\s*=\s*\{)")
_TS = (".ts", ".tsx", ".mts", ".cts")


class CodemodError(Exception):
    """One line: what could not be rewritten, and what to do by hand."""


@dataclass(frozen=True)
class Change:
    path: Path
    before: str
    after: str

    def diff(self, root: Path) -> str:
        name = os.path.relpath(self.path, root)
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True), self.after.splitlines(keepends=True), f"a/{name}", f"b/{name}"
            )
        )


def schema_variable(texts: list[str]) -> str:
    """`appSchema`, unless the files already use that name."""
    for name in ("appSchema", "stackSchema", "dbSchema"):
        if not any(re.search(rf"\b{name}\b", text) for text in texts):
            return name
    raise CodemodError("the schema files already use appSchema, stackSchema and dbSchema: rename one, then run this again")


def _env(typescript: bool) -> str:
    return "process.env.DB_SCHEMA!" if typescript else "process.env.DB_SCHEMA"


def rewrite_imports(text: str, drop: set[str]) -> str:
    """The pg-core import without the builders in `drop` (the statement goes if nothing is left)."""

    def keep(match: re.Match[str]) -> str:
        names = [name.strip() for name in match["names"].split(",") if name.strip()]
        kept = [name for name in names if name.split(" as ")[0].strip() not in drop]
        if not kept:
            return ""
        quote = match["quote"]
        return f"import {{ {', '.join(kept)} }} from {quote}drizzle-orm/pg-core{quote};"

    return _PG_CORE_IMPORT.sub(keep, text, count=1)


def _relative_import(source: Path, target: Path) -> str:
    relative = os.path.relpath(target.with_suffix(""), source.parent)
    return relative if relative.startswith(".") else f"./{relative}"


def after_imports(text: str) -> int:
    """The offset just after the file's leading import statements (multi-line ones included)."""
    offset = end = 0
    inside = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if inside:
            if _FROM_CLAUSE.search(stripped) or stripped.endswith(";"):
                inside, end = False, offset + len(line)
        elif stripped.startswith("import ") or stripped.startswith("import{"):
            if _FROM_CLAUSE.search(stripped) or re.match(r"import\s*['\"]", stripped):
                end = offset + len(line)
            else:
                inside = True
        elif stripped and not stripped.startswith(("//", "/*", "*", "'use ", '"use ')):
            break
        offset += len(line)
    return end


def rewrite_schema_file(path: Path, text: str, variable: str, schema_module: Path) -> str | None:
    """The file with its builders on `variable`, importing and re-exporting it; None if nothing to do."""
    used = {name for name in BUILDERS if re.search(rf"(?<![\w.]){name}\s*\(", text)}
    if not used:
        return None
    for name in used:
        text = re.sub(rf"(?<![\w.]){name}(\s*\()", rf"{variable}.{BUILDERS[name]}\1", text)
    still_used = {name for name in used if re.search(rf"(?<![\w.]){name}\b", _PG_CORE_IMPORT.sub("", text))}
    text = rewrite_imports(text, used - still_used)
    module = _relative_import(path, schema_module)
    quote = "'" if "'" in text and text.count("'") >= text.count('"') else '"'
    lines = (
        f"import {{ {variable} }} from {quote}{module}{quote};\n"
        f"// drizzle-kit reads the pgSchema from the exports of the files it loads: keep this re-export.\n"
        f"export {{ {variable} }} from {quote}{module}{quote};\n"
    )
    at = after_imports(text)
    text = text[:at] + lines + text[at:]
    return re.sub(r"\A\n+", "", text)


def schema_module_text(variable: str, typescript: bool) -> str:
    return (
        "import { pgSchema } from 'drizzle-orm/pg-core';\n\n"
        "// Every stack deploys into its own PostgreSQL schema (prod `app`, pull request N `app_pr_N`),\n"
        "// named by DB_SCHEMA when drizzle-kit and the app run.\n"
        f"export const {variable} = pgSchema({_env(typescript)});\n"
    )


def rewrite_config(text: str, typescript: bool) -> str | None:
    """The config with `schemaFilter: [DB_SCHEMA]`; None when it has a schemaFilter already."""
    if "schemaFilter" in text:
        return None
    match = _CONFIG_OBJECT.search(text)
    if match is None:
        raise CodemodError("the drizzle config has no `defineConfig({`, `export default {` or `module.exports = {`: add "
                           "schemaFilter: [process.env.DB_SCHEMA!] to it by hand")  # fmt: skip
    line_start = text.rfind("\n", 0, match.start()) + 1
    indent = re.match(r"\s*", text[line_start:]).group(0) + "  "
    entry = f"\n{indent}schemaFilter: [{_env(typescript)}],"
    return text[: match.end()] + entry + text[match.end() :]


def plan(package: Path, config_name: Path, files: list[Path]) -> list[Change]:
    """The changes that put the tables of `files` into one pgSchema named by DB_SCHEMA."""
    if not files:
        raise CodemodError("the drizzle config names no schema files")
    texts = {path: path.read_text(encoding="utf-8") for path in files}
    if not any(re.search(rf"(?<![\w.]){name}\s*\(", text) for text in texts.values() for name in BUILDERS):
        return []
    variable = schema_variable(list(texts.values()))
    directory = Path(os.path.commonpath([path.parent for path in files]))
    typescript = any(path.suffix in _TS for path in files)
    schema_module = directory / (SCHEMA_FILE + (".ts" if typescript else ".js"))
    if schema_module.exists():
        raise CodemodError(f"{schema_module} exists already: move it, then run this again")
    changes = []
    for path, text in texts.items():
        after = rewrite_schema_file(path, text, variable, schema_module)
        if after is not None and after != text:
            changes.append(Change(path, text, after))
    if not changes:
        return []
    changes.append(Change(schema_module, "", schema_module_text(variable, typescript)))
    config = package / config_name
    config_text = config.read_text(encoding="utf-8")
    config_after = rewrite_config(config_text, config.suffix in _TS)
    if config_after is not None:
        changes.append(Change(config, config_text, config_after))
    return changes


def schema_files(package: Path, config_name: Path) -> list[Path]:
    """The files the drizzle config names, read by drizzle-kit's own loader (steps.drizzle_tables)."""
    from steps.drizzle_tables import SCRIPT, PLACEHOLDER_URL
    from steps.runtime import run_tool

    result = run_tool(["node", str(SCRIPT), str(config_name)], cwd=package, timeout=180.0, what="drizzle tables",
                      env={"DB_SCHEMA": "app", "DATABASE_URL": PLACEHOLDER_URL})  # fmt: skip
    answers = [line for line in result.output.splitlines() if line.startswith("{")]
    answer = json.loads(answers[-1]) if answers else {}
    if "files" not in answer:
        raise CodemodError(f"the drizzle config did not load: {answer.get('message', 'node printed no answer')}")
    return [(package / name).resolve() for name in answer["files"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pgschema", description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, default=Path("."), help="the app's workspace root (default: here)")
    parser.add_argument("--schema-package", default=".", help="the package holding the drizzle config, relative to --app-dir")
    parser.add_argument("--drizzle-config", default="drizzle.config.ts", help="relative to --schema-package")
    parser.add_argument("--write", action="store_true", help="apply the changes (default: only print the diff)")
    args = parser.parse_args(argv)
    app = args.app_dir.resolve()
    package = (app / args.schema_package).resolve()
    config = Path(args.drizzle_config)
    if not (package / config).is_file():
        print(f"tools.pgschema: {package / config} does not exist: pass --schema-package and --drizzle-config", file=sys.stderr)
        return 2
    try:
        changes = plan(package, config, schema_files(package, config))
    except (CodemodError, OSError) as error:
        print(f"tools.pgschema: {error}", file=sys.stderr)
        return 1
    if not changes:
        print("tools.pgschema: no pgTable, pgEnum, pgView or pgSequence outside a pgSchema: nothing to change")
        return 0
    for change in changes:
        print(change.diff(app), end="")
    if not args.write:
        print(f"\ntools.pgschema: {len(changes)} file(s) would change; run again with --write to apply")
        return 0
    for change in changes:
        change.path.write_text(change.after, encoding="utf-8")
    from steps.drizzle_tables import read_tables
    from steps.retry import PermanentError

    try:
        tables = read_tables(package, config, "app_pr_1")["tables"]
    except PermanentError as error:
        print(f"tools.pgschema: written, but the tables still do not read as the stack's: {error}", file=sys.stderr)
        return 1
    print(f"\ntools.pgschema: {len(changes)} file(s) written; {len(tables)} table(s) now in the stack's schema "
          f"({', '.join(t['name'] for t in tables[:8])})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
