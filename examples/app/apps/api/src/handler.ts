/**
 * Lambda handler for function-URL / API Gateway HTTP API (payload v2) events.
 *
 * Environment:
 *   JWKS_URL        URL of the issuer's JSON Web Key Set (keys cached; refetched on unknown kid)
 *   JWT_ISSUER      expected `iss`
 *   JWT_AUDIENCE    expected `aud` (comma-separated for several)
 *   DB_SCHEMA       PostgreSQL schema of this stack (app, app_preview_pr_7, ...)
 *   DATABASE_URL    postgres://user:password@host:port/db: the runtime URL, usually the
 *                   transaction pooler (port 6543); see "Database connections" below
 *   DB_POOL_SIZE    connections one container may hold (default 1: it serves one request at a time)
 *   APP_VERSION     optional, reported by /health
 *   ALLOWED_ORIGIN  optional, sent as Access-Control-Allow-Origin
 *
 * Routes: GET /health (no auth), GET /projects (Bearer JWT), OPTIONS * (CORS preflight).
 *
 * Database connections. The function may reach PostgreSQL through a transaction pooler
 * (PgBouncer / Supavisor in transaction mode), which lends a server connection for one
 * transaction and then hands it to another client. So the handler keeps no session state:
 * - no `SET` (search_path included) and no startup options: the schema is chosen per query, by
 *   schema-qualified names (`"app"."projects"`, from `pgSchema(DB_SCHEMA)`);
 * - no named prepared statements: drizzle passes no statement name unless `.prepare(name)` is
 *   called (never here), and pg then sends the unnamed statement, parsed, bound and executed in
 *   one round trip, so it never outlives the transaction that the pooler's connection serves. A
 *   named statement would be prepared on one server connection and looked up on another;
 * - timeouts are client-side (`query_timeout`), never a `statement_timeout` session setting.
 * When the database refuses a connection (too many clients, the pooler's client limit, or no
 * connection within CONNECT_TIMEOUT_MS), the API answers 503 with Retry-After, well within the
 * function's timeout, instead of waiting until Lambda kills it.
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

const CONNECT_TIMEOUT_MS = 3_000;
const QUERY_TIMEOUT_MS = 5_000;
const RETRY_AFTER_SECONDS = '2';

function poolSize(): number {
  const size = Number(process.env.DB_POOL_SIZE ?? '1');
  if (!Number.isInteger(size) || size < 1) throw new HttpError(500, 'misconfigured', 'DB_POOL_SIZE must be a whole number >= 1');
  return size;
}

let db: { pool: Pool; orm: NodePgDatabase; tables: AppTables } | undefined;
function getDb() {
  if (!db) {
    const pool = new Pool({
      connectionString: env('DATABASE_URL'),
      max: poolSize(),
      idleTimeoutMillis: 10_000,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
    });
    // An idle connection the server or the pooler closes emits 'error' on the pool; unhandled,
    // that would end the whole container.
    pool.on('error', (err) => console.error('idle database connection lost', err.message));
    db = { pool, orm: drizzle(pool), tables: defineTables(assertSchemaName(env('DB_SCHEMA'))) };
  }
  return db;
}

/** An error and its causes, one message each (drizzle wraps the driver's error as `cause`). */
function causes(err: unknown): string {
  const messages: string[] = [];
  for (let e: any = err; e && messages.length < 5; e = e.cause) messages.push(`${e.code ? `[${e.code}] ` : ''}${e.message ?? e}`);
  return messages.join(' <- ');
}

/** The database cannot take this request now (connections exhausted or too slow to get one). */
function databaseBusy(err: unknown): boolean {
  const seen = new Set<unknown>();
  for (let e: any = err; e && !seen.has(e); e = e.cause) {
    seen.add(e);
    // 53300 too_many_connections ("sorry, too many clients already", also per role or database),
    // 53400 configuration_limit_exceeded, 57P03 cannot_connect_now (starting up or shutting down).
    if (['53300', '53400', '57P03'].includes(e.code)) return true;
    const message = String(e.message ?? '');
    if (
      /too many clients|too many connections|no more connections allowed|query_wait_timeout/i.test(message) ||
      /timeout exceeded when trying to connect|connection timeout|Query read timeout/i.test(message)
    )
      return true;
  }
  return false;
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
    if (databaseBusy(err)) {
      console.error('database busy:', causes(err));
      return json(503, { error: 'database_busy', message: 'the database is at capacity; retry shortly' } satisfies ErrorResponse, {
        'retry-after': RETRY_AFTER_SECONDS,
      });
    }
    if (err instanceof HttpError) {
      const extra: Record<string, string> =
        err.status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {};
      return json(err.status, { error: err.code, message: err.message } satisfies ErrorResponse, extra);
    }
    console.error('unhandled error', err);
    return json(500, { error: 'internal' } satisfies ErrorResponse);
  }
};
