// Runs a stand-in action's Python implementation (python -m sandbox.actions NAME STAGE) with the
// environment act gives a node action (INPUT_*, STATE_*, GITHUB_*), and exits with its status.
// Every stand-in's action.yml is `using: node20` with a one-line main.js (and post.js) calling this,
// so that post steps work (composite actions have none) and inputs arrive as upstream's do.
'use strict';
const { spawnSync } = require('node:child_process');

module.exports = function launch(name, stage) {
  const repo = process.env.WEBSTACK_RUNNER_REPO;
  const python = process.env.WEBSTACK_RUNNER_PYTHON;
  if (!repo || !python) {
    console.log(`::error::the local stand-in of this action runs under sandbox/workflow_runner.py only (WEBSTACK_RUNNER_REPO and WEBSTACK_RUNNER_PYTHON are unset)`);
    process.exit(1);
  }
  const done = spawnSync(python, ['-m', 'sandbox.actions', name, stage], {
    stdio: 'inherit',
    env: { ...process.env, PYTHONPATH: repo, PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (done.error) {
    console.log(`::error::could not run ${python}: ${done.error.message}`);
    process.exit(1);
  }
  process.exit(done.status === null ? 1 : done.status);
};
