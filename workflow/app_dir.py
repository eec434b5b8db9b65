"""Where a stack's app lives, for the workflow steps that run before `pulumi` (caches, restores).

    python -m workflow.app_dir --stack preview-pr-7 >> "$GITHUB_OUTPUT"

Prints `dir=<appDir>` and `api_bundle=<appDir>/<the API's bundle dir>`: the stack's `appDir` as the
program reads it, so a cache key or path never names a workspace the stack does not deploy.
"""

from __future__ import annotations

import argparse
import sys

from components.lambda_api import API_DIR, BUNDLE_DIR
from components.settings import SAFE_STACK_NAME, stack_setting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.app_dir", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    if not SAFE_STACK_NAME.fullmatch(args.stack):
        print(f"error: {args.stack[:80]!r} is not a stack name (prod, preview or preview-pr-<N>)", file=sys.stderr)
        return 2
    app_dir = str(stack_setting(args.stack, "appDir")).rstrip("/")
    print(f"dir={app_dir}")
    print(f"api_bundle={app_dir}/{API_DIR}/{BUNDLE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
