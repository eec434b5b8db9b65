// The tables a drizzle config declares, read the way drizzle-kit reads them; run by
// steps/drizzle_tables.py as `node drizzle_tables.cjs CONFIG` with cwd = the schema package, where
// push runs too (drizzle-kit resolves a relative `schema` glob from the working directory).
//
// Everything is the app's own: drizzle-kit is resolved from the config's directory, TypeScript is
// loaded with drizzle-kit's own loader (tsx in 0.31, esbuild-register before), the schema files
// import the app's installed drizzle-orm, and the tables come from drizzle-kit/api's
// generateDrizzleJson (drizzle-kit/payload's in 0.20-0.22), the snapshot `push` itself diffs against
// the database. So the app carries no script of ours.
//
// Prints one JSON object on the last line of stdout:
//   {"drizzleKit": VERSION, "schemaFilter": [...], "files": [...], "tables": [{name, schema, foreignKeys: [{name, columns, foreignTable}],
//    columns: [{name, type, notNull}]}], "enums": [{name, schema, values}], "schemas": [...]}
// or {"error": KIND, "message": TEXT} and exit 2 for what the Python side turns into a one-line error.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

function fail(kind, message) {
  process.stdout.write('\n' + JSON.stringify({ error: kind, message: String(message).split('\n')[0] }) + '\n');
  process.exit(2);
}

function globToRegExp(pattern) {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        const slash = pattern[i + 2] === '/';
        out += slash ? '(?:.*/)?' : '.*';
        i += slash ? 2 : 1;
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '{') {
      const end = pattern.indexOf('}', i);
      if (end < 0) { out += '\\{'; continue; }
      out += '(?:' + pattern.slice(i + 1, end).split(',').map((p) => p.replace(/[.+^$()|[\]\\]/g, '\\$&')).join('|') + ')';
      i = end;
    } else out += c.replace(/[.+^$()|[\]\\]/g, '\\$&');
  }
  return new RegExp('^' + out + '$');
}

// drizzle-kit's rule: a glob or path; a directory stands for the files in it.
function schemaFiles(patterns) {
  const files = new Set();
  for (const raw of [].concat(patterns)) {
    const pattern = raw.replace(/\\/g, '/');
    const segments = pattern.split('/');
    const wild = segments.findIndex((s) => /[*?{]/.test(s));
    if (wild < 0) {
      const full = path.resolve(pattern);
      if (!fs.existsSync(full)) continue;
      if (fs.statSync(full).isDirectory()) {
        for (const name of fs.readdirSync(full)) {
          if (fs.statSync(path.join(full, name)).isFile()) files.add(path.join(full, name));
        }
      } else files.add(full);
      continue;
    }
    const base = path.resolve(segments.slice(0, wild).join('/') || '.');
    const regex = globToRegExp(segments.slice(wild).join('/'));
    const walk = (dir, rel) => {
      let entries;
      try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
      for (const entry of entries) {
        if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
        const relative = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) walk(path.join(dir, entry.name), relative);
        else if (regex.test(relative)) files.add(path.join(dir, entry.name));
      }
    };
    walk(base, '');
  }
  return [...files].filter((f) => /\.(c|m)?[jt]s$/.test(f)).sort();
}

function main() {
  const configFile = path.resolve(process.argv[2] || 'drizzle.config.ts');
  const fromConfig = createRequire(configFile);
  let kitDir;
  try {
    // drizzle-kit's `exports` do not list package.json; its main entry sits at the package root.
    kitDir = path.dirname(fromConfig.resolve('drizzle-kit'));
  } catch {
    fail('no_drizzle_kit', `drizzle-kit is not installed where ${configFile} can resolve it`);
  }
  const fromKit = createRequire(path.join(kitDir, 'package.json'));
  const kitVersion = JSON.parse(fs.readFileSync(path.join(kitDir, 'package.json'), 'utf8')).version;
  // generateDrizzleJson is drizzle-kit/api's since 0.23; 0.20 to 0.22 export the same function from
  // drizzle-kit/payload. Older ones have neither (nor the unified `push` command).
  const apiEntry = ['drizzle-kit/api', 'drizzle-kit/payload'].find((entry) => {
    try {
      fromKit.resolve(entry);
      return true;
    } catch {
      return false;
    }
  });
  const [major, minor] = kitVersion.split('.').map(Number);
  if (major === 0 && minor < 21) {
    fail('kit_too_old', `drizzle-kit ${kitVersion} (at ${kitDir}) is too old: it has no \`push\` command (0.21 replaced push:pg with push --config)`);
  }
  if (!apiEntry) {
    fail('kit_too_old', `drizzle-kit ${kitVersion} (at ${kitDir}) is too old to have drizzle-kit/api (nor drizzle-kit/payload, 0.20-0.22)`);
  }
  try {
    fromKit.resolve('drizzle-orm');
  } catch {
    fail('no_drizzle_orm', `drizzle-kit (at ${kitDir}) cannot find the package drizzle-orm from the workspace root`);
  }
  try {
    fromKit('tsx/cjs/api').register();
  } catch {
    try {
      fromKit('esbuild-register/dist/node').register({ format: 'cjs', loader: 'ts' });
    } catch {
      fail('no_loader', `drizzle-kit ${kitVersion} at ${kitDir} has neither tsx nor esbuild-register to load TypeScript`);
    }
  }

  let config;
  try {
    const loaded = require(configFile);
    config = loaded.default || loaded;
  } catch (error) {
    fail('config', `${path.basename(configFile)} failed to load: ${error && error.message}`);
  }
  if (!config || !config.schema) fail('config', `${path.basename(configFile)} exports no \`schema\``);
  if (config.dialect && config.dialect !== 'postgresql') fail('config', `dialect ${config.dialect} is not postgresql`);

  const files = schemaFiles(config.schema);
  if (files.length === 0) {
    fail('no_schema_files', `no schema files match ${JSON.stringify(config.schema)} from ${process.cwd()}`);
  }
  const imports = {};
  for (const file of files) {
    let exported;
    try {
      exported = require(file);
    } catch (error) {
      fail('schema', `${path.relative(process.cwd(), file)} failed to load: ${error && error.message}`);
    }
    for (const [name, value] of Object.entries(exported)) imports[`${file}:${name}`] = value;
  }
  const api = fromKit(apiEntry);
  // No schema filter here: the caller must see tables that would land outside the target schema.
  const snapshot = api.generateDrizzleJson(imports, undefined, undefined, config.casing);
  const tables = Object.values(snapshot.tables).map((t) => ({
    name: t.name,
    schema: t.schema || 'public',
    columns: Object.values(t.columns).map((c) => ({
      name: c.name,
      type: c.typeSchema && c.typeSchema !== 'public' ? `${c.typeSchema}.${c.type}` : c.type,
      notNull: Boolean(c.notNull),
    })),
    foreignKeys: Object.values(t.foreignKeys || {}).map((fk) => ({ name: fk.name, columns: fk.columnsFrom, foreignTable: fk.tableTo })),
  }));
  // Snapshot v5 (drizzle-kit 0.20) keeps an enum's values as an object.
  const enums = Object.values(snapshot.enums || {}).map((e) => ({
    name: e.name, schema: e.schema || 'public', values: Array.isArray(e.values) ? e.values : Object.values(e.values || {}),
  }));
  tables.sort((a, b) => a.name.localeCompare(b.name));
  enums.sort((a, b) => a.name.localeCompare(b.name));
  process.stdout.write(
    '\n' +
      JSON.stringify({
        drizzleKit: kitVersion,
        schemaFilter: config.schemaFilter ? [].concat(config.schemaFilter) : ['public'],
        files: files.map((f) => path.relative(process.cwd(), f)),
        schemas: Object.values(snapshot.schemas || {}),
        tables,
        enums,
      }) +
      '\n',
  );
}

main();
