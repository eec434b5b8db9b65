/**
 * The tables of the app, built for one PostgreSQL schema.
 *
 * Every table, enum and index lives in `pgSchema(name)` so that one schema file serves every
 * stack (prod `app`, previews `app_preview_pr_<N>`). Constraint and index names are given
 * explicitly and kept short: Postgres truncates identifiers at 63 bytes, and a generated name
 * that gets truncated makes every `drizzle-kit push` drop and re-create that constraint.
 */
import { sql } from 'drizzle-orm';
import {
  foreignKey,
  index,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';

/** Postgres' own rule for an unquoted identifier, and its 63-byte limit. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSchemaName(name: string | undefined): string {
  if (!name) {
    throw new Error(
      'DB_SCHEMA is not set: set it to the PostgreSQL schema to use (for example "app" or "app_preview_pr_7").',
    );
  }
  if (!SCHEMA_NAME.test(name)) {
    throw new Error(`DB_SCHEMA=${JSON.stringify(name)} is not a valid schema name (lowercase letters, digits, _; at most 63 bytes).`);
  }
  return name;
}

export function defineTables(schemaName: string) {
  const dbSchema = pgSchema(assertSchemaName(schemaName));

  const projectStatus = dbSchema.enum('project_status', ['active', 'paused', 'archived']);

  const users = dbSchema.table(
    'users',
    {
      id: uuid('id').primaryKey().defaultRandom(),
      /** The JWT `sub` of this user. */
      subject: varchar('subject', { length: 255 }).notNull(),
      email: varchar('email', { length: 320 }),
      displayName: varchar('display_name', { length: 120 }),
      createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    },
    (t) => [uniqueIndex('users_subject_uq').on(t.subject)],
  );

  const projects = dbSchema.table(
    'projects',
    {
      id: uuid('id').primaryKey().defaultRandom(),
      ownerId: uuid('owner_id').notNull(),
      name: varchar('name', { length: 200 }).notNull(),
      description: text('description'),
      status: projectStatus('status').notNull().default('active'),
      createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
      updatedAt: timestamp('updated_at', { withTimezone: true })
        .notNull()
        .default(sql`now()`),
    },
    (t) => [
      foreignKey({ name: 'projects_owner_fk', columns: [t.ownerId], foreignColumns: [users.id] }).onDelete('cascade'),
      index('projects_owner_idx').on(t.ownerId),
    ],
  );

  const projectMembers = dbSchema.table(
    'project_members',
    {
      projectId: uuid('project_id').notNull(),
      userId: uuid('user_id').notNull(),
      role: varchar('role', { length: 20 }).notNull().default('viewer'),
      addedAt: timestamp('added_at', { withTimezone: true }).notNull().defaultNow(),
    },
    (t) => [
      primaryKey({ name: 'project_members_pk', columns: [t.projectId, t.userId] }),
      foreignKey({ name: 'members_project_fk', columns: [t.projectId], foreignColumns: [projects.id] }).onDelete('cascade'),
      foreignKey({ name: 'members_user_fk', columns: [t.userId], foreignColumns: [users.id] }).onDelete('cascade'),
      index('members_user_idx').on(t.userId),
    ],
  );

  return { dbSchema, projectStatus, users, projects, projectMembers };
}

export type AppTables = ReturnType<typeof defineTables>;
