// Local stand-in (see action.yml): runs python -m sandbox.actions setup-python post.
require(require('node:path').join(process.env.WEBSTACK_RUNNER_REPO || '/nonexistent', 'sandbox/actions/launch.cjs'))('setup-python', 'post');
