// Local stand-in of actions/github-script v7.0.1 (60a0d83039c74a4aee543508d2ffcb1c3799cdea).
//
// Upstream's src/main.ts, src/async-function.ts and src/retry-options.ts, on the same libraries at
// the versions its package-lock.json pins (sandbox/actions/node/package.json, installed by
// .ci/setup): the script runs as the body of an async function of (require, __original_require__,
// github, context, core, exec, glob, io), `github` being @actions/github's getOctokit with the
// retry and request-log plugins, so it talks to GITHUB_API_URL (the run's API: the local GitHub
// stand-in, sandbox/github_api.py) with `github-token`. The return value becomes the `result`
// output (`result-encoding` json or string); a throw fails the step with "Unhandled error: ...".
'use strict';
const path = require('node:path');
const { createRequire } = require('node:module');

const libraries = createRequire(path.join(process.env.WEBSTACK_RUNNER_REPO || '/nonexistent', 'sandbox/actions/node/package.json'));
const core = libraries('@actions/core');
const exec = libraries('@actions/exec');
const { context, getOctokit } = libraries('@actions/github');
const { defaults: defaultGitHubOptions } = libraries('@actions/github/lib/utils');
const glob = libraries('@actions/glob');
const io = libraries('@actions/io');
const { requestLog } = libraries('@octokit/plugin-request-log');
const { retry } = libraries('@octokit/plugin-retry');

function parseNumberArray(listString) {
  return listString ? listString.trim().split(',').map((x) => parseInt(x)) : [];
}

function getRetryOptions(retries, exemptStatusCodes, defaultOptions) {
  if (retries <= 0) return [{ enabled: false }, defaultOptions.request];
  const retryOptions = { enabled: true };
  if (exemptStatusCodes.length > 0) retryOptions.doNotRetry = exemptStatusCodes;
  return [retryOptions, { ...defaultOptions.request, retries }];
}

// src/wrap-require.ts: relative ids from the working directory, packages from its node_modules.
const wrapRequire = new Proxy(require, {
  apply: (target, thisArg, [moduleID]) => {
    if (moduleID.startsWith('.')) return target.apply(thisArg, [path.resolve(moduleID)]);
    return target.apply(thisArg, [target.resolve(moduleID, { paths: [process.cwd()] })]);
  },
});

function handleError(err) {
  console.error(err);
  core.setFailed(`Unhandled error: ${err}`);
}

async function main() {
  const token = core.getInput('github-token', { required: true });
  const debug = core.getBooleanInput('debug');
  const userAgent = core.getInput('user-agent');
  const previews = core.getInput('previews');
  const baseUrl = core.getInput('base-url');
  const retries = parseInt(core.getInput('retries'));
  const [retryOpts, requestOpts] = getRetryOptions(retries, parseNumberArray(core.getInput('retry-exempt-status-codes')), defaultGitHubOptions);
  const opts = {
    log: debug ? console : undefined,
    userAgent: userAgent || undefined,
    previews: previews ? previews.split(',') : undefined,
    retry: retryOpts,
    request: requestOpts,
  };
  if (baseUrl) opts.baseUrl = baseUrl;
  const github = getOctokit(token, opts, retry, requestLog);
  const script = core.getInput('script', { required: true });
  const AsyncFunction = Object.getPrototypeOf(async () => null).constructor;
  const args = { require: wrapRequire, __original_require__: require, github, context, core, exec, glob, io };
  const result = await new AsyncFunction(...Object.keys(args), script)(...Object.values(args));
  const encoding = core.getInput('result-encoding') || 'json';
  let output;
  if (encoding === 'json') output = JSON.stringify(result);
  else if (encoding === 'string') output = String(result);
  else throw new Error('"result-encoding" must be either "string" or "json"');
  core.setOutput('result', output);
}

process.on('unhandledRejection', handleError);
main().catch(handleError);
