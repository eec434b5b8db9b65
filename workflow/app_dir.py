"""Where a stack's app lives, for the workflow steps that run before `pulumi` (the npm cache).

    python -m workflow.app_dir --stack preview-pr-7 >> "$GITHUB_OUTPUT"

Prints `dir=<appDir>` and `lockfile=<appDir>/<its lockfile>`: the stack's settings as the program
reads them, so a cache key or path never names a workspace the stack does not deploy. (Build
outputs are not cached: deploys read the published builds, steps.artifacts.)
"""

from __future__ import annotations

import argparse
import sys

from core.names import SAFE_STACK_NAME
from core.stack_files import PROJECT_ROOT, stack_setting
from steps.package_manager import LOCKFILES, detect_name
from steps.runtime import PermanentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.app_dir", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    if not SAFE_STACK_NAME.fullmatch(args.stack):
        print(f"error: {args.stack[:80]!r} is not a stack name (prod, preview or preview-pr-<N>)", file=sys.stderr)
        return 2
    app_dir = str(stack_setting(args.stack, "appDir")).rstrip("/")
    try:
        manager = str(stack_setting(args.stack, "packageManager")) or detect_name(PROJECT_ROOT / app_dir)
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"dir={app_dir}")
    print(f"lockfile={app_dir}/{LOCKFILES[manager]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
