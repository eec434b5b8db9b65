/**
 * Wire types shared by the API and the site. Plain zod, no drizzle or pg at run time, so the
 * browser bundle can import these (the site imports types only).
 */
import { z } from 'zod';

export const PROJECT_STATUSES = ['active', 'paused', 'archived'] as const;
export const ProjectStatus = z.enum(PROJECT_STATUSES);
export type ProjectStatus = z.infer<typeof ProjectStatus>;

export const Project = z.object({
  id: z.string().uuid(),
  name: z.string().min(1).max(200),
  description: z.string().nullable(),
  status: ProjectStatus,
  createdAt: z.string(),
});
export type Project = z.infer<typeof Project>;

export const HealthResponse = z.object({
  status: z.literal('ok'),
  version: z.string(),
  schema: z.string().nullable(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;

export const ProjectsResponse = z.object({
  projects: z.array(Project),
});
export type ProjectsResponse = z.infer<typeof ProjectsResponse>;

export const ErrorResponse = z.object({
  error: z.string(),
  message: z.string().optional(),
});
export type ErrorResponse = z.infer<typeof ErrorResponse>;
