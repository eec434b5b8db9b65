"""A build: a step that changes nothing outside the runner (install, bundle, site export).

Builds are marked by this component's type, not by their names: the phase-order check lets a build
start as soon as its inputs exist (it overlaps the earlier phases), and never lets a live change
wait on one except through the data it produces. The Command inside keeps the build's own name,
so `pulumi up --replace` and the logs name it as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_command import local

from components.commands import PROJECT_DIR, deploy_step

BUILD_TYPE = "webstack:index:Build"


class Build(pulumi.ComponentResource):
    command: local.Command
    """Runs the build step; its stdout is the record of what it made (a content hash, or where
    `steps.artifacts` published it). Never an `archive`: upstream's refresh empties those."""

    def __init__(
        self,
        name: str,
        *,
        create: str,
        environment: Mapping[str, pulumi.Input[str]],
        triggers: Sequence[pulumi.Input[str]],
        after: Sequence[pulumi.Resource] = (),
        directory: str = PROJECT_DIR,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(BUILD_TYPE, name, None, opts)
        self.command = deploy_step(
            name,
            create=create,
            environment=environment,
            triggers=triggers,
            directory=directory,
            # Only other builds: a build waits for no live change except through its inputs' data.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
        )
        self.register_outputs({"hash": self.command.stdout})
