"""The one rule that protects what holds state: a stack transformation applied to every resource.

A resource of a type in `core.stateful.STATEFUL_TYPES` gets `protect` and `retain_on_delete`:
no plan can delete or replace it by accident, and `pulumi destroy` of its stack leaves it in the
cloud. In prod, the Commands of the database component are protected too (a replaced schema
Command is a plan nobody reviewed); a PR stack's schema is disposable and dropped on destroy.

It is a stack *transformation*, run in the program's own process, rather than a `transforms`
callback run by the engine: Pulumi's mock monitor records engine-side transforms without applying
them, so only an in-process rule lets the offline plan and the tests see exactly what the real
engine will protect.
"""

from __future__ import annotations

import pulumi

from core.stateful import DATABASE_COMPONENT, STATEFUL_TYPES

COMMAND_TYPE = "command:local:Command"


def is_stateful(type_: str, parent_types: tuple[str, ...], *, prod: bool) -> bool:
    """Whether a resource of `type_` under parents of `parent_types` must be protected."""
    if type_ in STATEFUL_TYPES:
        return True
    return prod and type_ == COMMAND_TYPE and DATABASE_COMPONENT in parent_types


def _parent_types(resource: pulumi.Resource | None) -> tuple[str, ...]:
    types = []
    while resource is not None:
        types.append(getattr(resource, "_type", ""))
        resource = getattr(resource, "_parent", None)
    return tuple(types)


def protect_stateful(*, prod: bool):
    """The stack transformation for a stack (prod or not)."""

    def transformation(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not is_stateful(args.type_, _parent_types(args.opts.parent), prod=prod):
            return None
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(protect=True, retain_on_delete=True))
        return pulumi.ResourceTransformationResult(props=args.props, opts=opts)

    return transformation


def register(*, prod: bool) -> None:
    """Apply the rule to every resource the program declares from now on."""
    pulumi.runtime.register_stack_transformation(protect_stateful(prod=prod))
