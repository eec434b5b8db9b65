"""The stack's PostgreSQL schema and its migration (phase 3).

`steps.schema create` makes the schema (idempotent); `steps.migrate` runs `drizzle-kit push` into
it and decides success itself. A PR stack drops its schema on `pulumi destroy`; prod and the
preview template never drop, and prod's schema Command is protected so that no plan can replace it.
The database URL is not an input: the steps read DATABASE_URL from the CI job's environment.
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
    app_dir: str
    schema_sources_hash: str
    """Content hash of shared-schemas and the lockfile: the migration re-runs when it changes."""
    migration_timeout_seconds: int
    drop_on_destroy: bool
    """Only PR stacks: their schema is theirs alone and its data is disposable."""
    allow_data_loss: bool
    """Previews apply data-losing changes; prod never does without a person deciding so."""
    protect: bool
    after: Sequence[pulumi.Resource]
    """What must be live before the schema changes: the infrastructure and the dependencies."""


class Database(pulumi.ComponentResource):
    schema: local.Command
    """Creates the schema (and drops it on destroy, PR stacks only)."""
    migration: local.Command
    """Pushes the drizzle schema into it."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:index:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        environment = {"DB_SCHEMA": args.schema}

        self.schema = deploy_step(
            f"{name}-schema",
            create=step_command("schema", "create", '--schema "$DB_SCHEMA"'),
            delete=step_command("schema", "drop", '--schema "$DB_SCHEMA"') if args.drop_on_destroy else None,
            environment=environment,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=list(args.after), protect=args.protect)
            ),
        )
        migrate_flags = ['--app-dir "$APP_DIR"', '--schema "$DB_SCHEMA"', '--timeout "$MIGRATION_TIMEOUT"']
        if args.allow_data_loss:
            migrate_flags.append("--allow-data-loss")
        self.migration = deploy_step(
            f"{name}-migrate",
            create=step_command("migrate", *migrate_flags),
            environment={
                **environment,
                "APP_DIR": args.app_dir,
                "MIGRATION_TIMEOUT": str(args.migration_timeout_seconds),
            },
            triggers=[args.schema_sources_hash],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.schema])),
        )
        self.register_outputs({"schema": args.schema, "migration": self.migration.stdout})
