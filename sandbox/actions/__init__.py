"""Local stand-ins of the third-party actions the workflows use, for sandbox/workflow_runner.py.

act maps each pinned `uses: OWNER/REPO[/PATH]@SHA` to the directory `sandbox/actions/OWNER/REPO`
(`--local-repository OWNER/REPO@SHA=DIR`). Each holds an `action.yml` with upstream's inputs and
outputs; most run `node main.js` (`using: node20`, so post steps work and inputs arrive as
INPUT_*), which starts the Python implementation beside this file through launch.cjs:

    actions/checkout                         checkout.py
    actions/setup-python, actions/setup-node setup_python.py, setup_node.py
    actions/cache/restore, actions/cache/save cache.py
    actions/upload-artifact, download-artifact artifacts.py
    pulumi/actions                           pulumi_cli.py
    aws-actions/configure-aws-credentials    aws_credentials.py
    trufflesecurity/trufflehog               trufflehog.py (and bin/docker, the runner's docker)
    actions/github-script                    actions/github-script/main.js (node, upstream's libraries)

Each module's docstring names the upstream release and files it mirrors, and what it cannot do.
They run with the runner's settings (WEBSTACK_RUNNER_*, set for every job by the runner) and
never outside it.
"""
