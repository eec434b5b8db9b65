"""What PostgreSQL's catalog holds in one schema, and how that compares with what the drizzle config
declares (`steps.drizzle_tables`' manifest).

`steps.migrate` snapshots the schema before a push and reads it again after: every table, column
(type, NOT NULL) and enum of the manifest must be in the catalog (drizzle-kit's word is not enough),
what the push dropped is listed, and foreign keys it dropped and re-added are warned about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# PostgreSQL truncates identifiers to this many bytes; a longer constraint name never matches.
MAX_IDENTIFIER_BYTES = 63


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
    # format_type qualifies a type outside the session's search_path, which the steps pin to the
    # catalog (steps.database): an extension's type in `public` reads `public.citext`.
    for prefix in (f"{schema}.", "public."):
        if t.startswith(prefix):
            t = t[len(prefix) :]
            break
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



def foreign_keys(conn, schema: str) -> dict[str, int]:
    """The foreign keys of `schema`: name -> oid (a dropped and re-added one gets a new oid)."""
    rows = conn.execute(
        "SELECT con.conname, con.oid::bigint FROM pg_constraint con"
        " JOIN pg_namespace n ON n.oid = con.connamespace WHERE n.nspname = %s AND con.contype = 'f'",
        (schema,),
    ).fetchall()
    return dict(rows)


def recreated_foreign_keys(before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    """Foreign keys that a push dropped and added again under the same name."""
    return sorted(name for name, oid in after.items() if name in before and before[name] != oid)


def long_foreign_key_names(manifest: Mapping) -> list[str]:
    """Foreign-key names of the schema file that PostgreSQL will truncate (over 63 bytes)."""
    return sorted(
        fk["name"]
        for table in manifest.get("tables", [])
        for fk in table.get("foreignKeys", [])
        if len(str(fk.get("name", "")).encode()) > MAX_IDENTIFIER_BYTES
    )


def foreign_key_churn_warning(schema: str, recreated: Sequence[str], long_names: Sequence[str]) -> str | None:
    """One warning naming the constraints that every push drops and re-adds, and the fix."""
    if not recreated and not long_names:
        return None
    parts = []
    if long_names:
        parts.append(f"foreign key names over {MAX_IDENTIFIER_BYTES} bytes in the schema file: {', '.join(long_names)}")
    if recreated:
        parts.append(f"dropped and re-added by this push: {', '.join(recreated)}")
    return (
        f"migrate: {schema}: {'; '.join(parts)}. PostgreSQL truncates names at {MAX_IDENTIFIER_BYTES} bytes, so drizzle-kit "
        "never finds them and drops and re-adds them on every push (locking both tables each time); give each a name "
        "of at most 63 bytes: foreignKey({ name: 'members_user_fk', columns: [t.userId], foreignColumns: [users.id] })"
    )
