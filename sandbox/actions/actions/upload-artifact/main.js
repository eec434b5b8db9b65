// Local stand-in (see action.yml): runs python -m sandbox.actions upload-artifact main.
require(require('node:path').join(process.env.WEBSTACK_RUNNER_REPO || '/nonexistent', 'sandbox/actions/launch.cjs'))('upload-artifact', 'main');
