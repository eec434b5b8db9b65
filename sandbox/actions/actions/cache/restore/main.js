// Local stand-in (see action.yml): runs python -m sandbox.actions cache-restore main.
require(require('node:path').join(process.env.WEBSTACK_RUNNER_REPO || '/nonexistent', 'sandbox/actions/launch.cjs'))('cache-restore', 'main');
