/**
 * Lambda handler for function-URL / API Gateway HTTP API (payload v2) events.
 *
 * Environment:
 *   JWKS_URL        URL of the issuer's JSON Web Key Set (keys cached; refetched on unknown kid)
 *   JWT_ISSUER      expected `iss`
 *   JWT_AUDIENCE    expected `aud` (comma-separated for several)
 *   DB_SCHEMA       PostgreSQL schema of this stack (app, app_preview_pr_7, ...)
 *   DATABASE_URL    postgres://user:password@host:port/db
 *   APP_VERSION     optional, reported by /health
 *   ALLOWED_ORIGIN  optional, sent as Access-Control-Allow-Origin
 *
 * Routes: GET /health (no auth), GET /projects (Bearer JWT), OPTIONS * (CORS preflight).
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { eq } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { Pool } from 'pg';
import {
  assertSchemaName,
  defineTables,
  type AppTables,
  type ErrorResponse,
  type HealthResponse,
  type ProjectsResponse,
} from '@app/shared-schemas';

type Event = Pick<APIGatewayProxyEventV2, 'rawPath' | 'headers'> & {
  requestContext: { http: { method: string } };
};
type Result = APIGatewayProxyStructuredResultV2;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new HttpError(500, 'misconfigured', `${name} is not set`);
  return value;
}

// ---------------------------------------------------------------- lazily created per container
let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
let jwksUrl: string | undefined;
function getJwks() {
  const url = env('JWKS_URL');
  if (!jwks || jwksUrl !== url) {
    // Caches the keys; refetches (rate-limited by cooldownDuration) when a token's kid is unknown.
    jwks = createRemoteJWKSet(new URL(url), { timeoutDuration: 5000, cooldownDuration: 30_000 });
    jwksUrl = url;
  }
  return jwks;
}

let db: { pool: Pool; orm: NodePgDatabase; tables: AppTables } | undefined;
function getDb() {
  if (!db) {
    const pool = new Pool({
      connectionString: env('DATABASE_URL'),
      max: 2,
      idleTimeoutMillis: 10_000,
      connectionTimeoutMillis: 5_000,
    });
    db = { pool, orm: drizzle(pool), tables: defineTables(assertSchemaName(env('DB_SCHEMA'))) };
  }
  return db;
}

// ---------------------------------------------------------------- helpers
function header(event: Event, name: string): string | undefined {
  const headers = event.headers ?? {};
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === wanted) return v ?? undefined;
  return undefined;
}

function corsHeaders(): Record<string, string> {
  const origin = process.env.ALLOWED_ORIGIN;
  if (!origin) return {};
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-headers': 'authorization, content-type',
    'access-control-allow-methods': 'GET, OPTIONS',
    'access-control-max-age': '600',
    vary: 'Origin',
  };
}

function json(status: number, body: unknown, extra: Record<string, string> = {}): Result {
  return {
    statusCode: status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...corsHeaders(), ...extra },
    body: JSON.stringify(body),
  };
}

function schemaName(): string | null {
  return process.env.DB_SCHEMA || null;
}

async function authenticate(event: Event): Promise<JWTPayload & { sub: string }> {
  const auth = header(event, 'authorization');
  const match = auth?.match(/^Bearer\s+(\S+)$/i);
  if (!match) throw new HttpError(401, 'unauthorized', 'missing bearer token');
  const audience = env('JWT_AUDIENCE')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  try {
    // Checks signature (key by kid from the JWKS), iss, aud, exp and nbf.
    const { payload } = await jwtVerify(match[1], getJwks(), { issuer: env('JWT_ISSUER'), audience });
    if (!payload.sub) throw new HttpError(401, 'unauthorized', 'token has no sub');
    return payload as JWTPayload & { sub: string };
  } catch (err) {
    if (err instanceof HttpError) throw err;
    const jwksDown =
      !(err instanceof joseErrors.JOSEError) || // fetch itself failed (DNS, connection refused, ...)
      err instanceof joseErrors.JWKSTimeout ||
      err instanceof joseErrors.JWKSInvalid || // the JWKS response is not a key set
      (err.code === 'ERR_JOSE_GENERIC' && /HTTP response/i.test(err.message)); // non-200 from the JWKS URL
    if (jwksDown) {
      console.error('JWKS unavailable', err);
      throw new HttpError(503, 'jwks_unavailable', 'cannot fetch signing keys');
    }
    throw new HttpError(401, 'unauthorized', (err as InstanceType<typeof joseErrors.JOSEError>).code);
  }
}

// ---------------------------------------------------------------- routes
async function listProjects(event: Event): Promise<Result> {
  const claims = await authenticate(event);
  const { orm, tables } = getDb();
  const { projects, users } = tables;
  const rows = await orm
    .select({
      id: projects.id,
      name: projects.name,
      description: projects.description,
      status: projects.status,
      createdAt: projects.createdAt,
    })
    .from(projects)
    .innerJoin(users, eq(projects.ownerId, users.id))
    .where(eq(users.subject, claims.sub))
    .orderBy(projects.createdAt);
  const body: ProjectsResponse = {
    projects: rows.map((r) => ({ ...r, createdAt: r.createdAt.toISOString() })),
  };
  return json(200, body);
}

export const handler = async (event: Event): Promise<Result> => {
  const method = (event.requestContext?.http?.method ?? 'GET').toUpperCase();
  const path = (event.rawPath || '/').replace(/\/+$/, '') || '/';
  try {
    if (method === 'OPTIONS') return { statusCode: 204, headers: corsHeaders() };
    if (path === '/health' && (method === 'GET' || method === 'HEAD')) {
      const body: HealthResponse = { status: 'ok', version: process.env.APP_VERSION || 'dev', schema: schemaName() };
      return json(200, body);
    }
    if (path === '/projects' && method === 'GET') return await listProjects(event);
    return json(404, { error: 'not_found', message: `${method} ${path}` } satisfies ErrorResponse);
  } catch (err) {
    if (err instanceof HttpError) {
      const extra: Record<string, string> =
        err.status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {};
      return json(err.status, { error: err.code, message: err.message } satisfies ErrorResponse, extra);
    }
    console.error('unhandled error', err);
    return json(500, { error: 'internal' } satisfies ErrorResponse);
  }
};
