/**
 * drizzle-kit configuration. Only environment variables, no CLI flags (drizzle-kit rejects
 * `--config` together with other flags):
 *   DB_SCHEMA     target PostgreSQL schema (must already exist for previews)
 *   DATABASE_URL  postgres://user:password@host:port/db (a password is required by drizzle-kit)
 * Runnable from the workspace root (`--config packages/shared-schemas/drizzle.config.ts`) or
 * from this directory: paths are resolved from this file, not from the working directory.
 */
import path from 'node:path';
import { defineConfig } from 'drizzle-kit';
import { assertSchemaName } from './src/define';

const schemaName = assertSchemaName(process.env.DB_SCHEMA);
const url = process.env.DATABASE_URL;
if (!url) {
  throw new Error('DATABASE_URL is not set: set it to postgres://user:password@host:port/db');
}

export default defineConfig({
  dialect: 'postgresql',
  schema: path.join(__dirname, 'src', 'schema.ts'),
  out: path.join(__dirname, 'drizzle'),
  schemaFilter: [schemaName],
  dbCredentials: { url },
});
