"""The webstack CrossGuard pack: `pulumi up --policy-pack policy` (see PulumiPolicy.yaml).

Only builds the pack. Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so
the rules live in `rules.py`, which tests import without starting anything.
"""

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this file with the pack directory as the working set; make `rules` importable
# however it is started (`python policy`, `python -m policy`).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rules import policies  # noqa: E402

PolicyPack(
    name="webstack-security",
    description="Security invariants of the webstack deployment (all mandatory).",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
