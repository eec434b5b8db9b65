// Test keys and JWTs for the API handler tests, made with the app's own `jose`.
//
//   node tests/support/jwt_tool.mjs APP_DIR < spec.json > out.json
//
// spec: {"kid": "k1", "tokens": {"<name>": {"key": "trusted" | "untrusted", "claims": {...}}}}
// out:  {"jwks": {"keys": [<public JWK of the trusted key>]}, "tokens": {"<name>": "<jwt>"}}
//
// Two fresh RS256 key pairs per run; only the trusted one is published in the JWKS. Both sign
// with the same `kid`, so an untrusted token fails on its signature, not on an unknown key id.
// Claims are taken as given (iat/exp as numbers): the caller decides what is valid or expired.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const appDir = process.argv[2];
if (!appDir) {
  console.error('usage: node jwt_tool.mjs APP_DIR < spec.json');
  process.exit(2);
}
const require = createRequire(path.resolve(appDir, 'package.json'));
const { SignJWT, exportJWK, generateKeyPair } = await import(pathToFileURL(require.resolve('jose')).href);

const spec = JSON.parse(readFileSync(0, 'utf8'));
const kid = spec.kid ?? 'test-key-1';
const keys = {
  trusted: await generateKeyPair('RS256', { extractable: true }),
  untrusted: await generateKeyPair('RS256', { extractable: true }),
};

const jwk = await exportJWK(keys.trusted.publicKey);
const tokens = {};
for (const [name, { key, claims }] of Object.entries(spec.tokens ?? {})) {
  if (!keys[key]) throw new Error(`token ${name}: unknown key ${key}`);
  tokens[name] = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(keys[key].privateKey);
}
process.stdout.write(JSON.stringify({ jwks: { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] }, tokens }));
