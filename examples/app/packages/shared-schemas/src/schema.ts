/**
 * The schema file that drizzle-kit reads (drizzle.config.ts `schema`).
 *
 * The target schema is chosen at push time by the environment variable DB_SCHEMA, which
 * drizzle.config.ts also puts in `schemaFilter`. Importing this file without DB_SCHEMA fails
 * with a clear error instead of silently targeting `public`.
 */
import { defineTables } from './define';

export const { dbSchema, projectStatus, users, projects, projectMembers } = defineTables(
  process.env.DB_SCHEMA as string,
);
