"""`python -m sandbox.actions NAME STAGE`: one stand-in action's main (or post) step; launch.cjs runs it."""

from __future__ import annotations

import importlib
import sys

from sandbox.actions.toolkit import ActionFailed, error

STANDINS = {
    "checkout": "sandbox.actions.checkout",
    "setup-python": "sandbox.actions.setup_python",
    "setup-node": "sandbox.actions.setup_node",
    "cache-restore": "sandbox.actions.cache",
    "cache-save": "sandbox.actions.cache",
    "upload-artifact": "sandbox.actions.artifacts",
    "download-artifact": "sandbox.actions.artifacts",
    "pulumi": "sandbox.actions.pulumi_cli",
    "configure-aws-credentials": "sandbox.actions.aws_credentials",
    "trufflehog": "sandbox.actions.trufflehog",
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in STANDINS or argv[1] not in ("main", "post"):
        error(f"usage: python -m sandbox.actions {{{'|'.join(STANDINS)}}} main|post")
        return 2
    name, stage = argv
    module = importlib.import_module(STANDINS[name])
    try:
        module.STAGES[(name, stage)]()
    except ActionFailed as exc:
        error(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
