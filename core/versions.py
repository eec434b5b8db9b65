"""Pinned tool and runtime versions, each written once.

What cannot import this file says the same and is checked against it (tests/test_core_facts.py):
the workflows' `node-version`, the app's wrangler pin, the engine modules' go.mod. `.ci/setup`
reads it (`python3 -m core.versions NAME` prints one).
"""

import sys

# The Node.js major everything runs on: CI's runners, this machine, the Lambda runtime and the
# bundle's esbuild target. wrangler 4.87 and newer need Node 22 (docs/facts.md).
NODE_MAJOR = 20
LAMBDA_RUNTIME = f"nodejs{NODE_MAJOR}.x"
# The API function's instruction set (Graviton): native code an external module ships must be built for it.
LAMBDA_ARCHITECTURE = "arm64"
ESBUILD_TARGET = f"node{NODE_MAJOR}"
# The last wrangler that runs on Node 20; the pipeline's own for an app that carries none.
WRANGLER_VERSION = "4.86.0"
# The pipeline's own esbuild, for an API whose workspace carries none (steps.build_lambda): the
# app's own wins when it has one, as with wrangler.
ESBUILD_VERSION = "0.27.3"
# pnpm and yarn for an app whose package.json names no `packageManager` version. Checked on Node
# 20.20: pnpm 9 is the last major that needs no newer Node; yarn 1 is the classic CLI published on
# npm (yarn 2+ ships through corepack only).
PACKAGE_MANAGER_VERSIONS = {"pnpm": "9.15.9", "yarn": "1.22.22"}
# The Pulumi CLI (built here from Go modules: sandbox/engine.py) and the sdk/v3 the engine's two
# small binaries build against.
PULUMI_CLI_VERSION = "3.274.1"
# The pulumi-command release whose Python SDK requirements.txt pins: what the command provider reports.
PULUMI_COMMAND_VERSION = "1.2.1"
# The PostgreSQL server the tests and the local sandbox run (Debian's postgresql-15).
POSTGRES_MAJOR = 15


def main(argv: list[str]) -> int:
    """Prints one constant, for shell scripts: `python3 -m core.versions NODE_MAJOR`."""
    names = {name: value for name, value in globals().items() if name.isupper()}
    if len(argv) != 1 or argv[0] not in names:
        print(f"usage: python3 -m core.versions {'|'.join(names)}", file=sys.stderr)
        return 2
    print(names[argv[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
