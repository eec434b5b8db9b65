"""A deploy phase: the parent of everything one phase (core.phases.PHASES) creates.

Grouping by phase makes the order explicit where no data flows: a step that must wait for a whole
phase says `depends_on=[that_phase]`, which Pulumi expands to every resource under it.
"""

from __future__ import annotations

import pulumi

from core.phases import PHASE_TYPE, PHASES


class Phase(pulumi.ComponentResource):
    """One phase of the deployment; `name` is one of PHASES."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases are {', '.join(PHASES)}")
        super().__init__(PHASE_TYPE, name, None, opts)
        self.register_outputs({})
