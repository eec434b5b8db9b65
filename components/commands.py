"""How the program runs a deploy step: one `local.Command` per `python -m steps.<name>` call.

Values reach a step through `environment` and the shell expands them, so the command text is a
constant and no value (least of all a secret) is ever interpolated into it. Secrets are not passed
at all: the steps read them from the CI job's environment, which `pulumi destroy` also has when it
runs a `delete` (docs/facts.md: `delete` runs with the environment stored at the last `up`).

Under upstream's rules (pulumi-command v1.2.1) only `triggers` replaces; any other input change
re-runs `update` (or `create`), and a replacement creates the new Command before the old one's
`delete` runs. A step with a `delete` must therefore be safe when that delete runs after its
successor's create: it deletes only what its own create printed (a deployment id, an owner id).
No step reads a Command's `assets` or `archive` (a refresh empties them upstream).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
from pulumi_command import local

# Relative to the Pulumi project directory, where the engine starts the command provider.
# An absolute path would differ between machines and re-run every step on a machine switch.
PROJECT_DIR = "."


def step_command(step: str, *flags: str) -> str:
    """`python -m steps.<step> <flags>`; flags refer to environment variables, never to values."""
    return " ".join(("python", "-m", f"steps.{step}", *flags))


def deploy_step(
    name: str,
    *,
    create: str | None,
    environment: Mapping[str, pulumi.Input[str]],
    triggers: Sequence[pulumi.Input[str]] | None = None,
    update: str | None = None,
    delete: str | None = None,
    directory: str = PROJECT_DIR,
    opts: pulumi.ResourceOptions,
) -> local.Command:
    """A Command that runs a deploy step; `opts` carries its parent and ordering."""
    # A step never prints a secret; stderr (its log) is still stored as a secret, a second guard
    # should a tool echo one in a form the masking misses. stdout stays plain: other Commands
    # read it (hashes, deployment ids).
    opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["stderr"]))
    return local.Command(
        name,
        create=create,
        update=update,
        delete=delete,
        dir=directory,
        environment=dict(environment),
        triggers=list(triggers) if triggers is not None else None,
        opts=opts,
    )
