/**
 * Entry point without side effects: importing it never needs DB_SCHEMA.
 * `@app/shared-schemas/schema` is the env-bound table file (drizzle-kit's `schema`).
 */
export { defineTables, assertSchemaName, type AppTables } from './define';
export * from './types';
