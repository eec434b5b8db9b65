"""The stack's PostgreSQL schema (phase 3).

`steps.schema create` makes the schema (idempotent). A PR stack drops its schema on
`pulumi destroy`; prod and the preview template never drop. The drop is safe under a replacement
(`up --replace`, a renamed or re-parented component: create-before-delete under pulumi-command's
rules): the create claims the schema with an owner id it prints, and the delete drops only a
schema still claimed by its own create, so a replaced Command leaves the live schema alone. This component is what holds the
database's state: in prod its Command is protected by the one stateful rule
(`components.protection`), recognised by this component's type, so that no plan can replace it.
The migration into the schema is a step of the phase (`pipeline.database`), re-run on every schema
change, and so not protected. The database URL is not an input: the steps read DATABASE_URL from
the CI job's environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import local

from components.commands import deploy_step, step_command


@dataclass(frozen=True, kw_only=True)
class DatabaseArgs:
    schema: str
    drop_on_destroy: bool
    """Only PR stacks: their schema is theirs alone and its data is disposable."""
    after: Sequence[pulumi.Resource]
    """What must be live before the schema changes: the infrastructure and the dependencies."""


class Database(pulumi.ComponentResource):
    schema: local.Command
    """Creates the schema (and drops it on destroy, PR stacks only)."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:Database", name, None, opts)
        drops = args.drop_on_destroy
        self.schema = deploy_step(
            f"{name}-schema",
            create=step_command("schema", "create", '--schema "$DB_SCHEMA"', *(["--claim"] if drops else [])),
            delete=step_command("schema", "drop", '--schema "$DB_SCHEMA"', "--claimed") if drops else None,
            environment={"DB_SCHEMA": args.schema},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        self.register_outputs({"schema": args.schema})
