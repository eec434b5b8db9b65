// A warm Lambda "container" for sandbox/lambda_runtime.py: loads one handler once, then serves
// invocations one at a time, like the Node.js runtime does between freezes.
//
//   node lambda_bootstrap.mjs --response-fd N      (cwd and LAMBDA_TASK_ROOT = the extracted code)
//
// Handler: env `_HANDLER` ("dist/index.handler" -> module dist/index{.js,.mjs,.cjs} under
// LAMBDA_TASK_ROOT, export `handler`; "index.a.b" -> export a.b), resolved as the Node.js runtime
// does (.js is required, or imported when it is an ES module; .mjs imported; .cjs required).
//
// Protocol, one JSON object per line:
//   stdin  <- {"id", "event", "context": {awsRequestId, deadlineMs, invokedFunctionArn}}
//   fd N   -> {"type": "ready"} once the module is loaded, or {"type": "init_error", "error"} (then exit 1)
//          -> {"id", "ok": true, "result"} | {"id", "ok": false, "error": {errorType, errorMessage, stack}}
// Responses go to their own pipe (fd N) so whatever the handler prints on stdout/stderr is only
// log output, as in CloudWatch. stdin closing (the runtime went away) ends the process.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const fdIndex = process.argv.indexOf('--response-fd');
const responseFd = fdIndex > 0 ? Number(process.argv[fdIndex + 1]) : NaN;
if (!Number.isInteger(responseFd)) {
  console.error('usage: node lambda_bootstrap.mjs --response-fd N');
  process.exit(2);
}

function send(message) {
  const data = Buffer.from(JSON.stringify(message) + '\n');
  let offset = 0;
  while (offset < data.length) offset += fs.writeSync(responseFd, data, offset);
}

function describe(err) {
  if (err instanceof Error) return { errorType: err.name || 'Error', errorMessage: err.message, stack: (err.stack || '').split('\n') };
  return { errorType: typeof err, errorMessage: String(err), stack: [] };
}

async function loadHandler() {
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const spec = process.env._HANDLER || '';
  const slash = spec.lastIndexOf('/');
  const dir = spec.slice(0, slash + 1);
  const [moduleName, ...exportPath] = spec.slice(slash + 1).split('.');
  if (!moduleName || exportPath.length === 0) throw Object.assign(new Error(`Bad handler ${spec}`), { name: 'Runtime.MalformedHandlerName' });
  const base = path.resolve(root, dir, moduleName);
  let mod;
  if (fs.existsSync(`${base}.js`)) {
    try {
      mod = createRequire(`${base}.js`)(`${base}.js`);
    } catch (err) {
      if (err && err.code === 'ERR_REQUIRE_ESM') mod = await import(pathToFileURL(`${base}.js`).href);
      else throw err;
    }
  } else if (fs.existsSync(`${base}.mjs`)) {
    mod = await import(pathToFileURL(`${base}.mjs`).href);
  } else if (fs.existsSync(`${base}.cjs`)) {
    mod = createRequire(`${base}.cjs`)(`${base}.cjs`);
  } else {
    throw Object.assign(new Error(`Cannot find module '${dir}${moduleName}'`), { name: 'Runtime.ImportModuleError' });
  }
  let fn = mod;
  for (const key of exportPath) fn = fn == null ? undefined : fn[key];
  if (typeof fn !== 'function' && mod && mod.default) {
    fn = mod.default;
    for (const key of exportPath) fn = fn == null ? undefined : fn[key];
  }
  if (typeof fn !== 'function') throw Object.assign(new Error(`${spec} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  return fn;
}

function makeContext(ctx) {
  const env = process.env;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: ctx.invokedFunctionArn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: ctx.awsRequestId,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(0, ctx.deadlineMs - Date.now()),
  };
}

function invoke(handler, event, context) {
  // Callback-style handlers (three parameters) as well as async / promise-returning ones.
  return new Promise((resolve, reject) => {
    const callback = (err, result) => (err ? reject(err) : resolve(result));
    try {
      const out = handler(event, context, callback);
      if (out && typeof out.then === 'function') out.then(resolve, reject);
      else if (handler.length < 3) resolve(out);
    } catch (err) {
      reject(err);
    }
  });
}

let handler;
try {
  handler = await loadHandler();
} catch (err) {
  console.error(err);
  send({ type: 'init_error', error: describe(err) });
  process.exit(1);
}
send({ type: 'ready' });

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
// One invocation at a time: the runtime writes the next request only after reading a response.
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  try {
    const result = await invoke(handler, request.event, makeContext(request.context || {}));
    send({ id: request.id, ok: true, result: result === undefined ? null : result });
  } catch (err) {
    console.error(err);
    send({ id: request.id, ok: false, error: describe(err) });
  }
}
process.exit(0);
