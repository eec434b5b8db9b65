"""Remove a closed pull request's preview from main's program alone, never from its state (sweeper.yml).

    python -m workflow.teardown_preview --pr N [--config-file Pulumi.preview.yaml] [--plan]

The preview role, which every pull request holds, may write every `preview-pr-*` state, so a PR can
plant a state for any closed PR number. `pulumi destroy` of such a state loads the plugins it names
(name, version, download URL, parameterization are all fields of the state) and runs the `delete`
commands it stores; the sweeper runs on `main`. So the sweeper never hands a PR's state to the
engine. It evaluates *this checkout's* program offline for `preview-pr-N` (`tools.offline`, the
committed settings) and removes, by the names the program derives, what that program declares:

| the program declares | removed with the sweeper's credentials | absent when |
|---|---|---|
| `cloudflare:index/dnsRecord:DnsRecord` | every record of that name and type in its zone (Cloudflare API) | the listing has none |
| `cloudflare:index/pagesDomain:PagesDomain` | the project's custom domain of that name | GET answers 404 |
| the Commands of `steps.pages` | every deployment of the PR's branch, never a production one | the listing has none |
| `aws:lambda/function:Function` (its URL, permissions, versions go with it) | `DeleteFunction` | `GetFunction` answers not found |
| `aws:iam/role:Role` (its `RolePolicyAttachment`s are detached) | `DetachRolePolicy`, `DeleteRole` | `GetRole` answers NoSuchEntity |
| the Commands of `steps.schema` (and `steps.migrate`, inside it) | `DROP SCHEMA ... CASCADE` (`steps.schema`) | `pg_namespace` has no row |
| the stack itself | every object of the stack in the backend (`workflow.state_store`) | the listing has none |

Each removal is idempotent (already gone is success), retried on transient errors, and verified
by reading the service again. Checks change nothing outside the runner; builds (and the branch
cleanup's claim) write only under the PR's prefix of the artifacts bucket (`previews/preview-pr-N/`),
which the bucket's lifecycle rule expires (`components.artifacts_bucket`). Anything else
the program declares, a resource type or a step this table does not know, stops the teardown
before anything is changed (teach it here first). Every derived name is also held to PR N's own
pattern (`core.names`), so no bug in the program can point the teardown at prod.

The state objects go last and only when everything else is gone, so a failed run leaves the stack
listed and the next sweeper run tries again. Nothing of the stored state is read.

Prints one line per removal and `{"stack", "removed", "already_gone", "failed", "state_objects"}`
on stdout at the end. Exit 0: nothing of the PR is left; 1: something could not be removed (each
problem on one line: what, where, why); 2: bad usage or a program the teardown cannot follow.

Environment: CLOUDFLARE_API_TOKEN (the previews' token), CLOUDFLARE_API_BASE_URL (optional),
DATABASE_URL (the preview role's), PULUMI_BACKEND_URL (the `pulumi login` URL), AWS credentials as
boto3 reads them (AWS_ENDPOINT_URL in tests).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.names import (
    PR_NUMBER,
    PR_SCHEMA,
    execution_role_name,
    function_name,
    pages_branch,
)
from steps.args import StepParser, local_path, matching
from steps.console import log, shown
from steps.retry import PermanentError, TransientError, describe, retry_call

COMMAND_TYPE = "command:local:Command"
STEP = re.compile(r"python -m steps\.(?P<module>[a-z_]+)(?: (?P<action>[a-z][a-z-]*))?\b")

# Resource types deleted together with another one, and the input that names it.
DELETED_WITH = {
    "aws:lambda/functionUrl:FunctionUrl": ("lambda-function", "functionName"),
    "aws:lambda/permission:Permission": ("lambda-function", "function"),
    "aws:lambda/alias:Alias": ("lambda-function", "functionName"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("iam-role", "role"),
}
# What each step module leaves outside the runner, and where (its Command's environment).
STEP_EFFECTS = {
    "schema": "schema",  # DB_SCHEMA
    "migrate": "inside-schema",  # tables in DB_SCHEMA: dropped with it
    "pages": "pages-branch",  # PAGES_PROJECT, PAGES_BRANCH, CLOUDFLARE_ACCOUNT_ID
    "install": "runner",
    "build_lambda": "runner",  # and previews/preview-pr-N/ of the artifacts bucket (expires)
    "build_site": "runner",  # likewise
    "health": "reads",
    "dns_wait": "reads",
    "promote": "reads",  # `check`: invokes through the URL, changes nothing
}
# Removal order: what serves the site first, the function before its role, the schema after the
# function that used it.
ORDER = ("dns-record", "pages-domain", "pages-branch", "lambda-function", "iam-role", "schema")


class PlanError(Exception):
    """The program declares something the teardown cannot remove safely; nothing was changed."""


@dataclass(frozen=True)
class Target:
    kind: str
    name: str
    where: tuple[tuple[str, str], ...] = ()
    declared_by: tuple[str, ...] = ()

    def at(self, key: str) -> str:
        return dict(self.where)[key]

    def label(self) -> str:
        place = ", ".join(f"{k} {v}" for k, v in self.where)
        return f"{self.kind} {self.name}" + (f" ({place})" if place else "")


# --- the plan: what main's program declares for preview-pr-N ----------------------------------------


def _steps_of(inputs: Mapping[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for key in ("create", "update", "delete"):
        text = inputs.get(key)
        if text is None:
            continue
        match = STEP.fullmatch(str(text).split(" --", 1)[0].strip()) if isinstance(text, str) else None
        if match is None:
            raise PlanError(f"a Command runs {shown(text)}, which is not a step of this repository (python -m steps.NAME)")
        found.add((match["module"], match["action"] or ""))
    return found


def _environment(resource: Any, *names: str) -> list[str]:
    environment = resource.inputs.get("environment") or {}
    missing = [n for n in names if not isinstance(environment.get(n), str) or not environment.get(n)]
    if missing:
        raise PlanError(f"Command {resource.name} declares no {', '.join(missing)}: the teardown cannot tell what it changed")
    return [environment[n] for n in names]


def project_of(recording: Any) -> str:
    """The Pulumi project the recording's URNs name (`urn:pulumi:<stack>::<project>::...`)."""
    return next(iter(recording.resources)).split("::")[1]


def plan_for(recording: Any, pr: int) -> list[Target]:
    """Everything outside the runner that main's program declares for `preview-pr-<pr>`."""
    stack = f"preview-pr-{pr}"
    project = project_of(recording)
    targets: dict[tuple[str, str, tuple], Target] = {}
    covered: list[tuple[str, str, str]] = []
    inside_schema: list[tuple[str, str]] = []
    region = ""

    def add(kind: str, name: str, declared: str, **where: str) -> None:
        key = (kind, name, tuple(sorted(where.items())))
        old = targets.get(key)
        targets[key] = Target(kind, name, key[2], (*(old.declared_by if old else ()), declared))

    for resource in recording.resources.values():
        if not resource.custom:
            continue
        inputs = resource.inputs
        if resource.type == "pulumi:providers:aws":
            region = str(inputs.get("region") or region)
        elif resource.type.startswith("pulumi:providers:"):
            continue
        elif resource.type == "aws:lambda/function:Function":
            add("lambda-function", str(inputs.get("name")), resource.name)
        elif resource.type == "aws:iam/role:Role":
            add("iam-role", str(inputs.get("name")), resource.name)
        elif resource.type == "cloudflare:index/dnsRecord:DnsRecord":
            add("dns-record", str(inputs.get("name")), resource.name, zone=str(inputs.get("zoneId")), type=str(inputs.get("type")))
        elif resource.type == "cloudflare:index/pagesDomain:PagesDomain":
            add("pages-domain", str(inputs.get("name")), resource.name,
                account=str(inputs.get("accountId")), project=str(inputs.get("projectName")))  # fmt: skip
        elif resource.type in DELETED_WITH:
            kind, key = DELETED_WITH[resource.type]
            covered.append((kind, str(inputs.get(key)), resource.name))
        elif resource.type == COMMAND_TYPE:
            for module, _ in sorted(_steps_of(inputs)):
                effect = STEP_EFFECTS.get(module)
                if effect is None:
                    raise PlanError(
                        f"Command {resource.name} runs steps.{module}, whose effects the teardown does not know: "
                        "add it to workflow/teardown_preview.py STEP_EFFECTS (and remove what it makes)"
                    )
                if effect == "schema":
                    [schema] = _environment(resource, "DB_SCHEMA")
                    add("schema", schema, resource.name)
                elif effect == "inside-schema":
                    [schema] = _environment(resource, "DB_SCHEMA")
                    inside_schema.append((schema, resource.name))
                elif effect == "pages-branch":
                    pages, branch, account = _environment(resource, "PAGES_PROJECT", "PAGES_BRANCH", "CLOUDFLARE_ACCOUNT_ID")
                    add("pages-branch", branch, resource.name, account=account, project=pages)
        else:
            raise PlanError(
                f"the program declares {resource.type} ({resource.name}) for {stack}, which the teardown does not "
                "know how to remove: teach workflow/teardown_preview.py first"
            )

    plan = sorted(targets.values(), key=lambda t: (ORDER.index(t.kind), t.name, t.where))
    for target in plan:
        problem = _not_of_pr(target, pr, project)
        if problem:
            raise PlanError(f"{target.label()} ({', '.join(target.declared_by)}) {problem}: refusing to remove it")
    names = {(t.kind, t.name) for t in plan}
    for kind, name, declared in covered:
        if (kind, name) not in names:
            raise PlanError(f"{declared} belongs to {kind} {name!r}, which the program does not declare for {stack}")
    for schema, declared in inside_schema:
        if ("schema", schema) not in names:
            raise PlanError(f"{declared} writes into schema {schema!r}, which no Command of {stack} creates")
    if region:
        plan = [Target(t.kind, t.name, (*t.where, ("region", region)) if t.kind.startswith(("lambda", "iam")) else t.where, t.declared_by) for t in plan]
    elif any(t.kind.startswith(("lambda", "iam")) for t in plan):
        raise PlanError("the program declares AWS resources but no aws provider region")
    return plan


def _not_of_pr(target: Target, pr: int, project: str) -> str:
    """Why a derived name is not PR N's own ('' when it is)."""
    stack = f"preview-pr-{pr}"
    expected = {
        "lambda-function": function_name(project, stack),
        "iam-role": execution_role_name(project, stack),
        "pages-branch": pages_branch(stack),
    }.get(target.kind)
    if expected is not None and target.name != expected:
        return f"is not PR {pr}'s own name {expected!r}"
    if target.kind == "schema" and not (PR_SCHEMA.fullmatch(target.name) and target.name.endswith(f"_pr_{pr}")):
        return f"is not a schema of PR {pr} (<base>_pr_{pr})"
    if target.kind in ("dns-record", "pages-domain") and not target.name.startswith(f"{pages_branch(stack)}."):
        return f"is not a host of PR {pr} ({pages_branch(stack)}.<siteSubdomain>.<domain>)"
    return ""


def recording_of(pr: int, config_file: Path) -> Any:
    """This checkout's program for `preview-pr-<pr>`, with the settings PR stacks run on."""
    from workflow.verify_state import recording_for

    return recording_for(f"preview-pr-{pr}", config_file)


# --- the removals ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    removed: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Services:
    """The clients the removals use, made on first use from the job's environment."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self.env = os.environ if env is None else env
        self._aws: dict[tuple[str, str], Any] = {}
        self._pages: dict[str, Any] = {}

    def aws(self, service: str, region: str) -> Any:
        if (service, region) not in self._aws:
            import boto3

            self._aws[(service, region)] = boto3.client(service, region_name=region)
        return self._aws[(service, region)]

    def pages(self, account: str) -> Any:
        from steps.pages import DEFAULT_API, PagesApi

        if account not in self._pages:
            token = self.env.get("CLOUDFLARE_API_TOKEN")
            if not token:
                raise PermanentError("CLOUDFLARE_API_TOKEN is not set: run this in the sweeper job, which has the previews' token")
            self._pages[account] = PagesApi(self.env.get("CLOUDFLARE_API_BASE_URL") or DEFAULT_API, token, account)
        return self._pages[account]


def _aws_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(((response or {}).get("Error") or {}).get("Code", "")) if isinstance(response, Mapping) else ""


def remove_dns_records(services: Services, target: Target) -> bool:
    api = services.pages("")
    zone, record_type = target.at("zone"), target.at("type")
    records = api.dns_records(zone, target.name, record_type)
    for record in records:
        api.delete_dns_record(zone, record["id"])
    left = api.dns_records(zone, target.name, record_type)
    if left:
        raise TransientError(f"{len(left)} {record_type} record(s) named {target.name} still listed after the delete")
    return bool(records)


def remove_pages_domain(services: Services, target: Target) -> bool:
    api = services.pages(target.at("account"))
    project = target.at("project")
    if api.pages_domain(project, target.name) is None:
        return False
    api.delete_pages_domain(project, target.name)
    if api.pages_domain(project, target.name) is not None:
        raise TransientError(f"custom domain {target.name} is still attached to {project} after the delete")
    return True


def remove_pages_branch(services: Services, target: Target) -> bool:
    from steps.pages import PROJECT_NOT_FOUND, branch_of, production_ids

    api = services.pages(target.at("account"))
    project_name = target.at("project")
    try:
        project = api.project(project_name)
    except PermanentError as exc:
        if PROJECT_NOT_FOUND in getattr(exc, "codes", ()):
            return False  # no project, no deployments
        raise
    if target.name == project.get("production_branch"):
        raise PermanentError(f"{target.name} is {project_name}'s production branch: its deployments are never removed here")
    keep = production_ids(project)
    mine = [d for d in api.deployments(project_name) if branch_of(d) == target.name and d["id"] not in keep]
    for deployment in mine:
        api.delete_deployment(project_name, deployment["id"])
    left = [d["id"] for d in api.deployments(project_name) if branch_of(d) == target.name and d["id"] not in keep]
    if left:
        raise TransientError(f"{len(left)} deployment(s) of {target.name} still listed after the delete, e.g. {left[0]}")
    return bool(mine)


def remove_lambda_function(services: Services, target: Target) -> bool:
    client = services.aws("lambda", target.at("region"))
    existed = True
    try:
        # Every version, alias, URL config and permission goes with the unqualified function.
        client.delete_function(FunctionName=target.name)
    except Exception as exc:
        if _aws_code(exc) != "ResourceNotFoundException":
            raise
        existed = False
    try:
        client.get_function(FunctionName=target.name)
    except Exception as exc:
        if _aws_code(exc) == "ResourceNotFoundException":
            return existed
        raise
    raise TransientError(f"function {target.name} still exists after DeleteFunction")


def remove_iam_role(services: Services, target: Target) -> bool:
    iam = services.aws("iam", target.at("region"))
    try:
        attached = [p["PolicyArn"] for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=target.name) for p in page["AttachedPolicies"]]
    except Exception as exc:
        if _aws_code(exc) == "NoSuchEntity":
            return False
        raise
    for policy in attached:
        try:
            iam.detach_role_policy(RoleName=target.name, PolicyArn=policy)
        except Exception as exc:
            if _aws_code(exc) != "NoSuchEntity":
                raise
    # Never declared, and no deploy role may add them: left for a person, named in the error.
    inline = [n for page in iam.get_paginator("list_role_policies").paginate(RoleName=target.name) for n in page["PolicyNames"]]
    profiles = [p["InstanceProfileName"] for p in iam.list_instance_profiles_for_role(RoleName=target.name)["InstanceProfiles"]]
    if inline or profiles:
        raise PermanentError(
            f"role {target.name} has what no deploy role can give it (inline policies {inline}, instance profiles "
            f"{profiles}): someone changed it by hand; remove those, then the role, with an administrator's credentials"
        )
    try:
        iam.delete_role(RoleName=target.name)
    except Exception as exc:
        if _aws_code(exc) != "NoSuchEntity":
            raise
    try:
        iam.get_role(RoleName=target.name)
    except Exception as exc:
        if _aws_code(exc) == "NoSuchEntity":
            return True
        raise
    raise TransientError(f"role {target.name} still exists after DeleteRole")


def remove_schema(services: Services, target: Target) -> bool:
    from steps.schema import drop_schema

    return bool(drop_schema(target.name)["changed"])


REMOVERS: dict[str, Callable[[Services, Target], bool]] = {
    "dns-record": remove_dns_records,
    "pages-domain": remove_pages_domain,
    "pages-branch": remove_pages_branch,
    "lambda-function": remove_lambda_function,
    "iam-role": remove_iam_role,
    "schema": remove_schema,
}


def tear_down(plan: Iterable[Target], services: Services) -> Outcome:
    """Removes every target; a failure is recorded and the others still go."""
    outcome = Outcome()
    for target in plan:
        label = target.label()
        try:
            existed = retry_call(
                lambda t=target: REMOVERS[t.kind](services, t),
                what=f"remove {label}",
                attempts=6,
                deadline=600.0,
                initial_wait=2.0,
                max_wait=60.0,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line, the others still run
            outcome.failed.append(f"{label}: {describe(exc)}")
            log(f"teardown: could not remove {label}: {describe(exc)}")
            continue
        (outcome.removed if existed else outcome.already_gone).append(label)
        log(f"teardown: {label}: {'removed' if existed else 'already gone'}")
    return outcome


# --- the CLI -----------------------------------------------------------------------------------------


def main(
    argv: list[str] | None = None,
    *,
    recording: Callable[[int, Path], Any] = recording_of,
    services: Services | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    env = os.environ if env is None else env
    parser = StepParser(prog="python -m workflow.teardown_preview", description=__doc__.splitlines()[0])
    parser.add_argument("--pr", required=True, type=matching(PR_NUMBER, "a pull request number"), help="the PR whose preview goes")
    parser.add_argument(
        "--config-file", type=local_path, default=Path("Pulumi.preview.yaml"), help="the settings PR stacks run on"
    )
    parser.add_argument("--plan", action="store_true", help="print what would be removed and change nothing")
    args = parser.parse_args(argv)
    pr = int(args.pr)
    stack = f"preview-pr-{pr}"

    try:
        evaluated = recording(pr, args.config_file)
        plan = plan_for(evaluated, pr)
    except (PlanError, FileNotFoundError) as exc:
        print(f"teardown_preview: {stack}: {exc}", file=sys.stderr)
        return 2
    if args.plan:
        print(json.dumps({"stack": stack, "plan": [t.label() for t in plan]}))
        return 0

    log(f"teardown: {stack}: {len(plan)} things to remove, derived from this checkout's program (the stored state is not read)")
    outcome = tear_down(plan, services or Services(env))
    state_objects: int | None = None
    if not outcome.failed:
        from workflow.state_store import open_store, remove_stack

        try:
            state_objects = remove_stack(open_store(env.get("PULUMI_BACKEND_URL", "")), project_of(evaluated), stack)
            log(f"teardown: {stack}: {state_objects} state object(s) removed")
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            outcome.failed.append(f"the state objects of {stack}: {describe(exc)}")
    else:
        log(f"teardown: {stack}: its state objects are kept, so the next sweeper run tries again")
    print(
        json.dumps(
            {
                "stack": stack,
                "removed": outcome.removed,
                "already_gone": outcome.already_gone,
                "failed": outcome.failed,
                "state_objects": state_objects,
            }
        ),
        flush=True,
    )
    for problem in outcome.failed:
        print(f"teardown_preview: {stack}: {problem}", file=sys.stderr)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
