"""Register every secret of the job with the runner's log masking, once, before `pulumi` runs.

`python -m workflow.masks` prints one `::add-mask::` line per secret value and per part of one
(a DSN's password, encoded and decoded; a webhook URL's path) for the variables of
`steps.console.secret_names`. GitHub masks `${{ secrets.X }}` values by itself, not the parts a
tool may print on their own, such as a password in a libpq error.

This runs as a workflow step of its own and never under a Command: a Command's stdout and stderr
are stored in the stack's state, where these lines would write every secret in plain text.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from steps.console import secret_values


def mask_commands(env: Mapping[str, str] | None = None) -> list[str]:
    """The workflow commands that register each secret value and part (one line each)."""
    lines: list[str] = []
    for value in secret_values(env):
        # A workflow command is one line: each line of a multi-line secret is registered alone.
        lines += [f"::add-mask::{line}" for line in value.splitlines() if line.strip()]
    return list(dict.fromkeys(lines))


def main() -> int:
    for line in mask_commands():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
