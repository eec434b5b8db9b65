/**
 * Prints the tables, columns, enums and constraints of the schema file as JSON, read from the
 * real drizzle objects (so it cannot drift from what `drizzle-kit push` applies).
 *
 *   DB_SCHEMA=app npx tsx packages/shared-schemas/scripts/manifest.ts
 *
 * Output: {"schema": "app", "tables": [{"name", "columns": [{"name", "type", "notNull",
 * "primaryKey"}], "indexes": [...], "foreignKeys": [...], "primaryKeys": [...]}], "enums": [...]}
 */
import { getTableConfig, isPgEnum, PgTable } from 'drizzle-orm/pg-core';
import { is } from 'drizzle-orm';
import * as schema from '../src/schema';

const tables = [];
const enums = [];
for (const value of Object.values(schema)) {
  if (is(value, PgTable)) {
    const cfg = getTableConfig(value);
    tables.push({
      name: cfg.name,
      schema: cfg.schema ?? 'public',
      columns: cfg.columns.map((c) => ({
        name: c.name,
        type: c.getSQLType(),
        notNull: c.notNull,
        primaryKey: c.primary,
        hasDefault: c.hasDefault,
      })),
      primaryKeys: cfg.primaryKeys.map((pk) => ({ name: pk.getName(), columns: pk.columns.map((c) => c.name) })),
      foreignKeys: cfg.foreignKeys.map((fk) => {
        const ref = fk.reference();
        return {
          name: fk.getName(),
          columns: ref.columns.map((c) => c.name),
          foreignTable: getTableConfig(ref.foreignTable).name,
          foreignColumns: ref.foreignColumns.map((c) => c.name),
        };
      }),
      indexes: cfg.indexes.map((i) => ({ name: i.config.name, unique: i.config.unique })),
    });
  } else if (isPgEnum(value)) {
    enums.push({ name: value.enumName, schema: value.schema ?? 'public', values: [...value.enumValues] });
  }
}
tables.sort((a, b) => a.name.localeCompare(b.name));
enums.sort((a, b) => a.name.localeCompare(b.name));

process.stdout.write(JSON.stringify({ schema: process.env.DB_SCHEMA, tables, enums }, null, 2) + '\n');
