"""The rules the workflows must keep, read from the YAML itself.

`violations()` checks all workflows together (some rules span files: the per-PR concurrency
group is shared by preview, cleanup and the sweeper). The real files must have none, and every
rule is shown to catch a broken copy: each case edits the text of one workflow and expects the
checker to name the break.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import stack_config_file
from core.stack_files import YAML_LOADER, read_yaml
from core.versions import PULUMI_CLI_VERSION

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("deploy", "preview", "cleanup", "sweeper", "security", "audit")

SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+(\.\d+)*\s*$")
SECRET_EXPR = re.compile(r"\$\{\{\s*secrets\.")
# The only commands that may see secrets: pulumi (its Commands' steps read them from the
# environment), the mask registration, the failure alert (the webhook) and the deploy record.
MASKS = "python -m workflow.masks"
SECRET_USERS = (
    "pulumi ",
    MASKS,
    "python -m steps.alert ",
    "python -m workflow.deploy_record ",
    "python -m workflow.preview_database",
    "python -m workflow.ddl_audit ",
    "python -m workflow.quarantine open",
    "python -m workflow.drift ",
    "python -m workflow.audit report ",
)
# The secrets the steps read, by the environment variable they read them from. Prod's workflow
# maps each from the secret of the same name (only in the `production` environment); the
# workflows that run for pull requests, PR code or PR-written state, from the PREVIEW_ one.
STEP_SECRETS = ("DATABASE_URL", "RUNTIME_DATABASE_URL", "CLOUDFLARE_API_TOKEN", "ALERT_WEBHOOK_URL")
SECRET_REF = re.compile(r"\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}")

# The security quarantine (workflow/quarantine.py): security's `quarantine` job alone writes issues,
# in its own environment with one secret (the security alert webhook); every job that runs
# `pulumi up` checks for an open quarantine issue first; removing things is never gated.
QUARANTINE_CHECK = "python -m workflow.quarantine check"
QUARANTINE_OPEN = 'python -m workflow.quarantine open --findings "$RUNNER_TEMP/verified-findings.jsonl"'
QUARANTINE_ENV = "security-quarantine"
QUARANTINE_SECRET = "SECURITY_ALERT_WEBHOOK_URL"
PULUMI_UP = re.compile(r"\bpulumi\s+up\b")
PULUMI_CLI = re.compile(r"(^|[\s|;&(])pulumi\s|workflow\.drift\b")

PER_PR_GROUP = "preview-pr-${{ github.event.pull_request.number }}"
PR_STACK = "preview-pr-${{ github.event.pull_request.number }}"
# The pack's config (policy/pack_config.py): this run's repository and the stack's own site.
PACK_CONFIG = (
    'python -m policy.pack_config --stack "$STACK" --repository "$REPOSITORY" '
    '--repository-id "$REPOSITORY_ID" --repository-owner-id "$REPOSITORY_OWNER_ID" '
    '--output "$RUNNER_TEMP/policy-config.json"'
)
WITH_POLICY = '--policy-pack policy --policy-pack-config "$RUNNER_TEMP/policy-config.json"'
# A PR's job runs the base branch's pack, from a second checkout (issue 27 §5), with the config its
# script writes there from the template the PR stack runs on.
BASE_CHECKOUT = ".policy-base"
PR_WITH_POLICY = WITH_POLICY.replace("--policy-pack policy", f"--policy-pack {BASE_CHECKOUT}/policy")
PR_PACK_CONFIG = f'{PACK_CONFIG} --config-file "$GITHUB_WORKSPACE/Pulumi.preview.yaml"'
PREVIEW_LINE = f'pulumi preview --json --stack "$STACK" {WITH_POLICY} > "$RUNNER_TEMP/plan.json"'
# A PR stack has no config file of its own: every command that reads its settings takes the
# template's (components.settings.stack_config_file), so the engine applies it over the defaults.
PR_CONFIG = f"--config-file {stack_config_file('preview-pr-1').name}"
PR_PREVIEW_LINE = f'pulumi preview --json --stack "$STACK" {PR_CONFIG} {PR_WITH_POLICY} > "$RUNNER_TEMP/plan.json"'
# Commands that validate a stack's config (the CLI checks required keys before the program runs).
PULUMI_READS_CONFIG = re.compile(r"\bpulumi\s+(up|preview|destroy|refresh)\b")
# Every `pulumi up` and `destroy` runs under the stack's DynamoDB lease (workflow/lease.py): either
# on one line after LEASED, or inside a `LEASED bash -euo pipefail -c '` block that ends with a line `'`.
LEASED = 'python -m workflow.lease run --stack "$STACK" -- '
LEASED_BLOCK = f"{LEASED}bash -euo pipefail -c '"
PULUMI_UP_OR_DESTROY = re.compile(r"\bpulumi\s+(up|destroy)\b")
UP_LINE = f'{LEASED}pulumi up --yes --stack "$STACK" {WITH_POLICY}'
PR_UP_LINE = f'{LEASED}pulumi up --yes --stack "$STACK" {PR_CONFIG} {PR_WITH_POLICY}'
# The state is checked against the program, and the checked copy (not the PR-writable original)
# is what `destroy` reads.
CHECKED = 'PULUMI_BACKEND_URL="$checked" '
DESTROY_LINES = (
    'pulumi stack export --stack "$STACK" --file "$state"',
    'python -m workflow.verify_state --stack "$STACK" --state "$state"',
    f'{CHECKED}pulumi stack init "$STACK" --secrets-provider "$PULUMI_SECRETS_PROVIDER"',
    f'{CHECKED}pulumi stack import --stack "$STACK" --file "$state"',
    f'{CHECKED}pulumi destroy --yes --stack "$STACK" {PR_CONFIG}',
    'pulumi stack rm --yes --force "$STACK"',
)

Workflows = Mapping[str, tuple[str, dict[str, Any]]]


def load_texts() -> dict[str, str]:
    return {name: (WORKFLOWS / f"{name}.yml").read_text(encoding="utf-8") for name in NAMES}


def parse(texts: Mapping[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {name: (text, yaml.load(text, Loader=YAML_LOADER)) for name, text in texts.items()}


def triggers(wf: Mapping[Any, Any]) -> Any:
    # YAML 1.1 reads the key `on` as the boolean True.
    return wf.get("on", wf.get(True))


def steps(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def runs(job: Mapping[str, Any]) -> list[str]:
    return [s["run"] for s in steps(job) if "run" in s]


def run_lines(job: Mapping[str, Any]) -> list[str]:
    """Every shell line of the job, folded (`>-`) scripts joined back into one command."""
    lines = []
    for script in runs(job):
        lines += [line.strip() for line in script.splitlines() if line.strip()]
    return lines


def uses_of(job: Mapping[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def index_of(lines: list[str], prefix: str) -> int:
    for i, line in enumerate(lines):
        if line.startswith(prefix):
            return i
    return -1


def check_order(where: str, lines: list[str], commands: list[str]) -> Iterator[str]:
    positions = []
    for command in commands:
        i = index_of(lines, command)
        if i < 0:
            yield f"{where}: missing command `{command}`"
            return
        positions.append(i)
    if positions != sorted(positions):
        yield f"{where}: commands out of order: {commands}"


def check_common(name: str, text: str, wf: Mapping[str, Any]) -> Iterator[str]:
    on = triggers(wf)
    if isinstance(on, Mapping) and "pull_request_target" in on or on == "pull_request_target":
        yield f"{name}: uses pull_request_target"
    if wf.get("permissions") != {}:
        yield f"{name}: top-level permissions must be {{}} (each job grants its own)"

    # Every third-party action pinned to a full commit SHA with its version beside it.
    for number, line in enumerate(text.splitlines(), 1):
        match = USES_LINE.match(line)
        if not match or match.group(1).startswith("./"):
            continue
        ref, rest = match.group(1), match.group(2)
        if not SHA_PIN.match(ref):
            yield f"{name}:{number}: action not pinned to a full commit SHA: {ref}"
        elif not VERSION_COMMENT.match(rest):
            yield f"{name}:{number}: SHA pin without a `# vX.Y.Z` comment: {ref}"

    if SECRET_EXPR.search(yaml.safe_dump(wf.get("env") or {})):
        yield f"{name}: secrets in the workflow-level env"
    for job_id, job in (wf.get("jobs") or {}).items():
        where = f"{name}/{job_id}"
        if "uses" in job:  # a reusable-workflow call has no steps of its own
            if job.get("permissions") is None:
                yield f"{where}: no permissions"
            continue
        perms = job.get("permissions")
        if not isinstance(perms, Mapping):
            yield f"{where}: permissions must be an explicit map"
            perms = {}
        if perms.get("contents", "read") != "read":
            yield f"{where}: contents must be read-only"
        aws = uses_of(job, "aws-actions/configure-aws-credentials")
        if perms.get("id-token") == "write" and not aws:
            yield f"{where}: id-token: write without AWS OIDC"
        if aws and perms.get("id-token") != "write":
            yield f"{where}: AWS OIDC needs id-token: write"
        script = uses_of(job, "actions/github-script")
        if perms.get("pull-requests") == "write" and not script:
            yield f"{where}: pull-requests: write without a comment step"
        if script and set(perms) != {"pull-requests"}:
            yield f"{where}: the comment job must hold nothing but pull-requests: write"
        yield from check_issue_permissions(where, job, perms)
        # Reading workflow runs is the audit report's alone (its collector lists them).
        readers = {"actions"} if name == "audit" and perms.get("actions") == "read" else set()
        for extra in set(perms) - {"contents", "id-token", "pull-requests", "issues"} - readers:
            yield f"{where}: unexpected permission {extra}"
        if perms.get("pull-requests") == "write" and name == "audit":
            yield f"{where}: the audit only reads"
        if SECRET_EXPR.search(yaml.safe_dump(job.get("env") or {})):
            yield f"{where}: secrets in the job-level env"
        for step in steps(job):
            label = step.get("name") or step.get("uses") or step.get("run", "")[:30]
            if SECRET_EXPR.search(yaml.safe_dump({k: v for k, v in step.items() if k != "env"})):
                yield f"{where}/{label}: secrets outside the step's env"
            if SECRET_EXPR.search(yaml.safe_dump(step.get("env") or {})) and not any(
                user in step.get("run", "") for user in SECRET_USERS
            ):
                yield f"{where}/{label}: secrets in a step that does not run pulumi"
        yield from check_leased(where, job)
        if aws and any(PULUMI_CLI.search(line) for line in run_lines(job)):
            yield from check_pulumi_job(where, job)


def unleased(script: str) -> list[str]:
    """The lines of a script that run `pulumi up`/`destroy` outside the lease."""
    found, inside = [], False
    for raw in script.splitlines():
        line = raw.strip()
        if inside:
            if line == "'":
                inside = False
            elif "'" in line:
                found.append(f"{line} (a quote inside the leased block)")
            elif PULUMI_UP_OR_DESTROY.search(line):
                pass
            continue
        if line == LEASED_BLOCK:
            inside = True
        elif PULUMI_UP_OR_DESTROY.search(line) and not line.startswith(LEASED):
            found.append(line)
    if inside:
        found.append("a leased block that never ends (a line `'`)")
    return found


def check_leased(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    """Every `pulumi up` and `pulumi destroy` holds the stack's lease while it runs."""
    for script in runs(job):
        for line in unleased(script):
            yield f"{where}: pulumi up/destroy outside the lease (`{LEASED}`): {line}"


def check_pulumi_job(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    """Jobs with cloud credentials: the program's virtualenv on PATH, the CLI, the S3 backend."""
    lines = run_lines(job)
    for needed in (
        "python -m venv .venv",
        ".venv/bin/pip install -r requirements.txt",
        'echo "$PWD/.venv/bin" >> "$GITHUB_PATH"',
        'pulumi login "$PULUMI_BACKEND_URL"',
    ):
        if index_of(lines, needed) < 0:
            yield f"{where}: missing `{needed}`"
    if not uses_of(job, "pulumi/actions"):
        yield f"{where}: the Pulumi CLI is not installed with pulumi/actions"
    if "PULUMI_BACKEND_URL" not in (job.get("env") or {}):
        yield f"{where}: PULUMI_BACKEND_URL not set"
    elif job["env"]["PULUMI_BACKEND_URL"] != "${{ vars.PULUMI_BACKEND_URL }}":
        yield f"{where}: PULUMI_BACKEND_URL must come from vars.PULUMI_BACKEND_URL"
    for step in steps(job):
        if step.get("uses", "").startswith("actions/checkout@"):
            if (step.get("with") or {}).get("persist-credentials") is not False:
                yield f"{where}: checkout keeps the token (persist-credentials)"
    # The steps under `pulumi` never print `::add-mask::` (their output is stored in state), so the
    # job registers every secret before the first pulumi step that holds one.
    secret_pulumi = [
        i for i, step in enumerate(steps(job))
        if "pulumi " in step.get("run", "") and SECRET_EXPR.search(yaml.safe_dump(step.get("env") or {}))
    ]
    masks = [i for i, step in enumerate(steps(job)) if MASKS in step.get("run", "")]
    if secret_pulumi and not (masks and masks[0] < secret_pulumi[0]):
        yield f"{where}: secrets are not masked (`{MASKS}`) before the first pulumi step that holds them"


def only_job(wf: Mapping[str, Any], job_id: str) -> Mapping[str, Any]:
    return (wf.get("jobs") or {}).get(job_id) or {}


def role(job: Mapping[str, Any]) -> str | None:
    aws = uses_of(job, "aws-actions/configure-aws-credentials")
    return (aws[0].get("with") or {}).get("role-to-assume") if aws else None


def check_no_build_outputs_cached(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    """No build output travels between runs in a cache: a deploy takes what an earlier run built
    from the artifacts bucket by the record in the state (steps.artifacts), checked by hash, or
    builds again; a cache is neither needed nor to be trusted with what gets deployed."""
    for step in steps(job):
        if "actions/cache" in step.get("uses", "") and any(
            marker in str((step.get("with") or {}).get("path")) for marker in (".build/", "api_bundle", "/dist")
        ):
            yield f"{where}: build outputs are not cached between runs (step {step.get('name')!r}): deploys read the published builds"


def check_pack_config(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    """The pack learns the repository from the run (never from files a PR can change)."""
    [step] = [s for s in steps(job) if "python -m policy.pack_config" in str(s.get("run"))] or [{}]
    env = step.get("env") or {}
    expected = {
        "REPOSITORY": "${{ github.repository }}",
        "REPOSITORY_ID": "${{ github.repository_id }}",
        "REPOSITORY_OWNER_ID": "${{ github.repository_owner_id }}",
    }
    if {k: env.get(k) for k in expected} != expected:
        yield f"{where}: the policy pack config must carry this run's repository (github.repository and its ids)"


def check_base_pack(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    """The pack, its virtualenv and its config come from a checkout of the PR's base commit."""
    base = [s for s in uses_of(job, "actions/checkout") if (s.get("with") or {}).get("path") == BASE_CHECKOUT]
    if not base or (base[0].get("with") or {}).get("ref") != "${{ github.event.pull_request.base.sha }}":
        yield f"{where}: the policy pack must come from a checkout of the base commit (github.event.pull_request.base.sha) in {BASE_CHECKOUT}"
    for name in ("Policy pack virtualenv", "Policy pack config"):
        if not any(s.get("name") == name and s.get("working-directory") == BASE_CHECKOUT for s in steps(job)):
            yield f"{where}: `{name}` must run in the base branch's checkout ({BASE_CHECKOUT})"


def environments() -> dict[str, str]:
    """The GitHub environment of each kind of job, as prod's stack file has its deploy roles trust them."""
    from components.settings import stack_setting

    return {
        kind: str(stack_setting("prod", key))
        for kind, key in (
            ("prod", "githubProdEnvironment"),
            ("preview", "githubPreviewEnvironment"),
            ("sweeper", "githubSweeperEnvironment"),
        )
    }


def check_environment(where: str, job: Mapping[str, Any], kind: str) -> Iterator[str]:
    """The job runs in the environment its deploy role trusts (its OIDC `sub` is that environment's)."""
    expected = environments()[kind]
    if not expected:
        yield f"{where}: Pulumi.prod.yaml names no GitHub environment for the {kind} jobs"
    elif job.get("environment") != expected:
        yield f"{where}: must run in the `{expected}` environment (its role trusts that subject), not {job.get('environment')!r}"


def check_secret_sources(name: str, wf: Mapping[str, Any]) -> Iterator[str]:
    """Prod's secrets only in prod's workflow; pull requests' workflows map the PREVIEW_ ones into
    the names the steps read; a job that reads any secret names its environment."""
    # The audit reads prod's records and the account's logs: main's jobs in prod's environment only.
    prefix = "" if name in ("deploy", "audit") else "PREVIEW_"
    # security reads one secret, the security alert webhook (its quarantine job's environment).
    allowed = {"ALERT_WEBHOOK_URL": QUARANTINE_SECRET} if name == "security" else {s: f"{prefix}{s}" for s in STEP_SECRETS}
    for job_id, job in (wf.get("jobs") or {}).items():
        where = f"{name}/{job_id}"
        used = False
        for step in steps(job):
            for variable, value in (step.get("env") or {}).items():
                for secret in SECRET_REF.findall(str(value)):
                    used = True
                    if allowed.get(variable) != secret:
                        yield (
                            f"{where}: {variable} comes from secrets.{secret}; this workflow maps "
                            f"{', '.join(allowed.values())} only (prod's secrets belong to deploy alone)"
                        )
        if used and not job.get("environment"):
            yield f"{where}: reads secrets outside an environment (repository secrets reach every PR's workflow)"


def check_deploy(wf: Mapping[str, Any]) -> Iterator[str]:
    on = triggers(wf)
    if on != {"push": {"branches": ["main"]}}:
        yield f"deploy: must run on push to main only, not {on}"
    conc = wf.get("concurrency") or {}
    if conc.get("group") != "deploy-prod" or conc.get("cancel-in-progress") is not False:
        yield "deploy: needs concurrency group deploy-prod with cancel-in-progress: false"
    job = only_job(wf, "deploy")
    yield from check_environment("deploy", job, "prod")
    if job.get("needs") != "security" or (only_job(wf, "security").get("uses") != "./.github/workflows/security.yml"):
        yield "deploy: not gated by the security workflow"
    if role(job) != "${{ vars.AWS_PROD_ROLE_ARN }}":
        yield "deploy: must assume the prod role"
    if (job.get("env") or {}).get("STACK") != "prod":
        yield "deploy: STACK must be prod"
    lines = run_lines(job)
    yield from check_order(
        "deploy",
        lines,
        [
            PACK_CONFIG,
            'pulumi login "$PULUMI_BACKEND_URL"',
            'pulumi stack select "$STACK"',
            MASKS,
            # Before `up`: prod's schemas exist and are prod's before a preview could claim them.
            "python -m workflow.preview_database",
            # Before `up`: the migration's DDL is recorded (and marked) by the trigger.
            "python -m workflow.ddl_audit install",
            PREVIEW_LINE,
            'python -m workflow.plan_report "$RUNNER_TEMP/plan.json" --stack "$STACK"',
            UP_LINE,
        ],
    )
    if any("--create" in line for line in lines):
        yield "deploy: must never create the prod stack"
    # The pack learns which environments the deploy roles may trust from the workflow itself.
    envs = environments()
    flags = [f"--prod-environment {envs['prod']}", f"--preview-environment {envs['preview']}", f"--sweeper-environment {envs['sweeper']}"]
    pack_line = lines[index_of(lines, PACK_CONFIG)] if index_of(lines, PACK_CONFIG) >= 0 else ""
    if not all(flag in pack_line for flag in flags) or pack_line.count("-environment ") != len(flags):
        yield f"deploy: the pack config must name exactly the environments the roles trust: {' '.join(flags)}"
    yield from check_no_build_outputs_cached("deploy", job)
    yield from check_pack_config("deploy", job)


def check_preview(wf: Mapping[str, Any]) -> Iterator[str]:
    on = triggers(wf)
    types = ((on or {}).get("pull_request") or {}).get("types") if isinstance(on, Mapping) else None
    if set(on or {}) != {"pull_request"} or sorted(types or []) != ["opened", "reopened", "synchronize"]:
        yield f"preview: must run on pull_request opened/synchronize/reopened, not {on}"
    job = only_job(wf, "preview")
    if role(job) != "${{ vars.AWS_PREVIEW_ROLE_ARN }}":
        yield "preview: must assume the preview role"
    if (job.get("env") or {}).get("STACK") != PR_STACK:
        yield f"preview: STACK must be {PR_STACK}"
    if "head.repo.full_name == github.repository" not in str(job.get("if")):
        yield "preview: fork PRs must be skipped (no OIDC token or secrets there)"
    yield from check_environment("preview", job, "preview")
    if any("workflow.deploy_record" in line for line in run_lines(job)):
        yield "preview: the audit table is written with prod's credentials only: no deploy record from a PR"
    yield from check_order(
        "preview",
        run_lines(job),
        [
            PR_PACK_CONFIG,
            'pulumi login "$PULUMI_BACKEND_URL"',
            'pulumi stack select --create "$STACK" --secrets-provider "$PULUMI_SECRETS_PROVIDER"',
            PR_PREVIEW_LINE,
            'python -m workflow.plan_report "$RUNNER_TEMP/plan.json" --stack "$STACK"',
            PR_UP_LINE,
            'pulumi stack output --json --stack "$STACK"',
            "python -m workflow.pr_comment",
        ],
    )
    yield from check_no_build_outputs_cached("preview", job)
    yield from check_pack_config("preview", job)
    yield from check_base_pack("preview", job)
    comment = only_job(wf, "comment")
    if comment.get("needs") != "preview" or not uses_of(comment, "actions/github-script"):
        yield "preview: the comment job must post what the preview job rendered"
    script = (uses_of(comment, "actions/github-script") or [{}])[0].get("with", {}).get("script", "")
    if "updateComment" not in script or "createComment" not in script:
        yield "preview: the comment must be edited when it exists, created otherwise"


def check_cleanup(wf: Mapping[str, Any]) -> Iterator[str]:
    on = triggers(wf)
    if on != {"pull_request": {"types": ["closed"]}}:
        yield f"cleanup: must run on pull_request closed only, not {on}"
    job = only_job(wf, "destroy")
    if role(job) != "${{ vars.AWS_CLEANUP_ROLE_ARN }}":
        yield "cleanup: must assume the cleanup role (it removes, never creates)"
    if (job.get("env") or {}).get("STACK") != PR_STACK:
        yield f"cleanup: STACK must be {PR_STACK}"
    yield from check_environment("cleanup", job, "preview")
    yield from check_destroy("cleanup", job)


def check_destroy(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    lines = run_lines(job)
    yield from check_order(where, lines, ['pulumi login "$PULUMI_BACKEND_URL"', LEASED_BLOCK, *DESTROY_LINES])
    # The lease is held from the export to the removal: no `up` can write the state in between.
    block = index_of(lines, LEASED_BLOCK)
    end = lines.index("'", block) if block >= 0 and "'" in lines[block:] else -1
    if block >= 0 and not block < index_of(lines, DESTROY_LINES[-1]) < end:
        yield f"{where}: the lease must be held from the state export to `pulumi stack rm`"
    if not any('grep -q "no stack named"' in line for line in lines):
        yield f"{where}: a stack that is already gone must count as success"
    if any(line.startswith("pulumi stack select") and "--create" in line for line in lines):
        yield f"{where}: must not create the stack it destroys"


# No Pulumi CLI in the sweeper: the lease has no Pulumi lock to cancel (`--pulumi ''`).
TEARDOWN_LINE = (
    'python -m workflow.lease run --stack "$STACK" --pulumi \'\' -- '
    'python -m workflow.teardown_preview --pr "$PR" --config-file Pulumi.preview.yaml'
)


def check_sweeper(wf: Mapping[str, Any]) -> Iterator[str]:
    """main's code on main: the closed PR's state is never read, no Pulumi runs, the sweeper role only."""
    on = triggers(wf)
    if not isinstance(on, Mapping) or set(on) != {"schedule", "workflow_dispatch"}:
        yield f"sweeper: must run on schedule and workflow_dispatch, not {on}"
    find = only_job(wf, "find")
    if index_of(run_lines(find), 'python -m workflow.sweep_previews find --repo "$GITHUB_REPOSITORY"') < 0:
        yield "sweeper: find job does not list the closed PRs' stacks"
    job = only_job(wf, "teardown")
    if (job.get("env") or {}).get("STACK") != "preview-pr-${{ matrix.pr }}" or (job.get("env") or {}).get("PR") != "${{ matrix.pr }}":
        yield "sweeper: STACK must be preview-pr-${{ matrix.pr }} and PR ${{ matrix.pr }}"
    if role(find) != "${{ vars.AWS_SWEEPER_ROLE_ARN }}" or role(job) != "${{ vars.AWS_SWEEPER_ROLE_ARN }}":
        yield "sweeper: must assume the sweeper role"
    yield from check_environment("sweeper/find", find, "sweeper")
    yield from check_environment("sweeper/teardown", job, "sweeper")
    lines = run_lines(job)
    yield from check_order("sweeper", lines, ["python -m workflow.sweep_previews check", TEARDOWN_LINE])
    for name, checked in (("find", find), ("teardown", job)):
        if uses_of(checked, "pulumi/actions") or any(re.match(r"(\S+=\S+ )*pulumi\b", line) for line in run_lines(checked)):
            yield f"sweeper/{name}: runs Pulumi; a PR's state must never reach the engine here"


def check_security(wf: Mapping[str, Any]) -> Iterator[str]:
    on = triggers(wf)
    if not isinstance(on, Mapping) or not {"push", "pull_request", "workflow_call"} <= set(on):
        yield f"security: must run on push, pull_request and workflow_call, not {on}"
    secrets_job = only_job(wf, "secrets")
    scan = uses_of(secrets_job, "trufflesecurity/trufflehog")
    if not scan or "only-verified" in str(scan[0].get("with")):
        yield "security: secret scanning must fail on every finding, not only verified ones"
    checkout = uses_of(secrets_job, "actions/checkout")
    if not checkout or (checkout[0].get("with") or {}).get("fetch-depth") != 0:
        yield "security: secret scanning needs the history (fetch-depth: 0)"
    sast = only_job(wf, "sast")
    for step in steps(secrets_job) + steps(sast) + steps(only_job(wf, "quarantine")):
        if step.get("continue-on-error"):
            yield "security: a gate step must not continue on error"
    lines = run_lines(sast)
    blocking = [line for line in lines if line.startswith(("bandit", "zizmor")) and "--exit-zero" not in line and "--no-exit-codes" not in line]
    if not any(line.startswith("bandit") and "--severity-level high" in line for line in blocking):
        yield "security: bandit must block on high"
    if not any(line.startswith("zizmor") and "--min-severity high" in line for line in blocking):
        yield "security: zizmor must block on high"
    warning = [line for line in lines if "--exit-zero" in line or "--no-exit-codes" in line]
    if not any(line.startswith("bandit") and "--severity-level low" in line for line in warning):
        yield "security: bandit must warn on low and medium"
    if not any(line.startswith("zizmor") for line in warning):
        yield "security: zizmor must warn on low and medium"


def check_shared(workflows: Workflows) -> Iterator[str]:
    groups = {}
    for name in ("preview", "cleanup"):
        conc = workflows[name][1].get("concurrency") or {}
        groups[name] = conc.get("group")
        if conc.get("cancel-in-progress") is not False:
            yield f"{name}: cancel-in-progress must be false (a killed pulumi leaves a stale lock)"
    if groups["preview"] != PER_PR_GROUP or groups["cleanup"] != groups["preview"]:
        yield f"preview and cleanup must share the concurrency group {PER_PR_GROUP}: {groups}"
    sweep = only_job(workflows["sweeper"][1], "teardown").get("concurrency") or {}
    if sweep.get("group") != PER_PR_GROUP.replace("github.event.pull_request.number", "matrix.pr"):
        yield "sweeper: each teardown must join the PR's concurrency group"
    if sweep.get("cancel-in-progress") is not False:
        yield "sweeper: cancel-in-progress must be false"
    yield from check_no_cache_writes(workflows)

    # CI runs the CLI the tests run (bin/pulumi, sandbox.engine), not merely one of the same SDK.
    for name, (_, wf) in workflows.items():
        for job_id, job in (wf.get("jobs") or {}).items():
            for step in uses_of(job, "pulumi/actions"):
                version = str((step.get("with") or {}).get("pulumi-version"))
                if version != PULUMI_CLI_VERSION:
                    yield f"{name}/{job_id}: pulumi-version {version} is not the CLI the tests run ({PULUMI_CLI_VERSION})"
        # Every command of a PR stack that reads its settings names the template as its config file.
        if name in ("preview", "cleanup", "sweeper"):
            for job_id, job in (wf.get("jobs") or {}).items():
                for line in run_lines(job):
                    if PULUMI_READS_CONFIG.search(line) and PR_CONFIG not in line:
                        yield f"{name}/{job_id}: a PR stack's settings are the template's: `{line[:80]}` lacks {PR_CONFIG}"


# Jobs on main that handle what a PR may have written (the sweeper's, the audit's stack list) and
# cleanup: none writes an Actions cache. A cache saved by a job on main is restored by `deploy`.
NO_CACHE_WRITES = {"sweeper": ("find", "teardown"), "cleanup": ("destroy",), "audit": ("stacks",)}


def check_no_cache_writes(workflows: Workflows) -> Iterator[str]:
    for name, jobs in NO_CACHE_WRITES.items():
        for job_id in jobs:
            for step in steps(only_job(workflows[name][1], job_id)):
                action = str(step.get("uses", ""))
                caching = (action.startswith(("actions/setup-python@", "actions/setup-node@")) and "cache" in (step.get("with") or {})) or (
                    action.startswith(("actions/cache@", "actions/cache/save@"))
                )
                if caching:
                    yield f"{name}/{job_id}: writes an Actions cache ({action.split('@')[0]}), which deploy on main may restore"


def check_issue_permissions(where: str, job: Mapping[str, Any], perms: Mapping[str, Any]) -> Iterator[str]:
    """`issues: write` only where the quarantine issue is written (security's `quarantine` job, and
    the call of security.yml that lends it that ceiling); `issues: read` only for the gate."""
    issues = perms.get("issues")
    if issues is None:
        return
    if "uses" in job:
        if job["uses"] != "./.github/workflows/security.yml" or issues != "write":
            yield f"{where}: issues: {issues} on a workflow call other than security.yml's (whose quarantine job writes the issue)"
        return
    lines = run_lines(job)
    if issues == "write":
        if index_of(lines, "python -m workflow.quarantine open") < 0:
            yield f"{where}: issues: write only in the quarantine job (`python -m workflow.quarantine open`)"
        elif dict(perms) != {"contents": "read", "issues": "write"}:
            yield f"{where}: the quarantine job holds contents: read and issues: write, nothing else"
    elif issues == "read":
        if index_of(lines, QUARANTINE_CHECK) < 0:
            yield f"{where}: issues: read only for the quarantine gate (`{QUARANTINE_CHECK}`)"
    else:
        yield f"{where}: issues: {issues} is neither read (the gate) nor write (the quarantine job)"


def check_quarantine_gate(where: str, job: Mapping[str, Any]) -> Iterator[str]:
    """A job that runs `pulumi up` asks for an open quarantine issue before anything else (AWS
    credentials, `pulumi`); one that only removes things never does."""
    job_steps = steps(job)
    ups = [i for i, step in enumerate(job_steps) if PULUMI_UP.search(str(step.get("run", "")))]
    gates = [i for i, step in enumerate(job_steps) if QUARANTINE_CHECK in str(step.get("run", ""))]
    if not ups:
        if gates:
            yield f"{where}: a job that runs no `pulumi up` has no quarantine gate (removing things is always allowed)"
        return
    if not gates:
        yield f"{where}: runs `pulumi up` without the quarantine gate (`{QUARANTINE_CHECK}`)"
        return
    gate = job_steps[gates[0]]
    aws = [i for i, step in enumerate(job_steps) if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
    pulumi = [i for i, step in enumerate(job_steps) if "pulumi " in str(step.get("run", "")) or str(step.get("uses", "")).startswith("pulumi/actions@")]
    if not gates[0] < min(aws + pulumi + ups):
        yield f"{where}: the quarantine gate must run before the AWS credentials and any pulumi step (fail at once)"
    if "if" in gate or gate.get("continue-on-error"):
        yield f"{where}: the quarantine gate must always run and always stop the job (no `if`, no continue-on-error)"
    if (gate.get("env") or {}).get("GITHUB_TOKEN") != "${{ github.token }}":
        yield f"{where}: the quarantine gate asks GitHub with the job's own token (GITHUB_TOKEN: ${{{{ github.token }}}})"
    if (job.get("permissions") or {}).get("issues") != "read":
        yield f"{where}: the quarantine gate needs issues: read"


def check_quarantine(workflows: Workflows) -> Iterator[str]:
    for name, (_, wf) in workflows.items():
        for job_id, job in (wf.get("jobs") or {}).items():
            if "uses" not in job:
                yield from check_quarantine_gate(f"{name}/{job_id}", job)

    security = workflows["security"][1]
    on = triggers(security)
    if not isinstance(on, Mapping) or not (on.get("schedule") or []) or "workflow_dispatch" not in on:
        yield "security: the full-history scan must run weekly (schedule) and by hand (workflow_dispatch)"
    elif not all(re.fullmatch(r"\d+ \d+ \* \* \d", str(entry.get("cron", ""))) for entry in on["schedule"]):
        yield f"security: the full-history scan runs weekly (one cron `M H * * D`), not {on['schedule']}"
    if only_job(security, "secrets").get("if") != "github.event_name != 'schedule' && github.event_name != 'workflow_dispatch'":
        yield "security: the secret scan must run on every push, pull request and call (only the scheduled run is the quarantine's)"
    job = only_job(security, "quarantine")
    where = "security/quarantine"
    if job.get("needs") != "secrets":
        yield f"{where}: must follow the secret scan (needs: secrets)"
    condition = " ".join(str(job.get("if", "")).split())
    for needed in ("!cancelled()", "needs.secrets.result == 'failure'", "github.event_name == 'schedule'"):
        if needed not in condition:
            yield f"{where}: must run after a failed secret scan and on the weekly schedule (`{needed}` in its `if`)"
    if job.get("environment") != QUARANTINE_ENV:
        yield f"{where}: must run in the `{QUARANTINE_ENV}` environment (its alert webhook, no prod secret)"
    conc = job.get("concurrency") or {}
    if conc.get("group") != QUARANTINE_ENV or conc.get("cancel-in-progress") is not False:
        yield f"{where}: one quarantine writer at a time (concurrency group {QUARANTINE_ENV}, not cancelled)"
    checkout = uses_of(job, "actions/checkout")
    if not checkout or (checkout[0].get("with") or {}).get("fetch-depth") != 0:
        yield f"{where}: the full-history scan needs the history (fetch-depth: 0)"
    lines = run_lines(job)
    scan = next((line for line in lines if line.startswith("docker run") and "trufflehog" in line), "")
    gate = uses_of(only_job(security, "secrets"), "trufflesecurity/trufflehog")
    version = str(((gate[0] if gate else {}).get("with") or {}).get("version"))
    if f"ghcr.io/trufflesecurity/trufflehog:{version} " not in scan:
        yield f"{where}: the full-history scan must run the same trufflehog release as the gate ({version})"
    if "git file:///tmp/ " not in scan or "--since-commit" in scan or "--branch" in scan:
        yield f"{where}: the scan must cover all of the history (no --since-commit or --branch)"
    if "--results=verified " not in scan or "--json" not in scan:
        yield f"{where}: the scan quarantines on verified results only, as JSON (--results=verified --json)"
    if not scan.endswith(' > "$RUNNER_TEMP/verified-findings.jsonl"'):
        yield f"{where}: the scan's findings go to a file, never the log (a finding carries the secret)"
    if not 0 <= index_of(lines, scan or "docker run") < index_of(lines, QUARANTINE_OPEN):
        yield f"{where}: the quarantine reads the scan's findings (`{QUARANTINE_OPEN}`) after the scan"
    opener = next((step for step in steps(job) if QUARANTINE_OPEN in str(step.get("run", ""))), {})
    if (opener.get("env") or {}).get("GITHUB_TOKEN") != "${{ github.token }}" or "if" in opener:
        yield f"{where}: the quarantine writes the issue with the job's own token, always"
    call = only_job(workflows["deploy"][1], "security")
    if dict(call.get("permissions") or {}) != {"contents": "read", "issues": "write"}:
        yield "deploy/security: the security call must grant contents: read and issues: write (its quarantine job's ceiling on main)"


AUDIT_REPORT = "python -m workflow.audit report --since \"$SINCE\" --alert"
DRIFT_LINE = f'{LEASED}python -m workflow.drift --stack "$STACK" --output "$RUNNER_TEMP/drift.json"'


def workflows_deploy() -> Mapping[str, Any]:
    return read_yaml(WORKFLOWS / "deploy.yml")


def check_audit(wf: Mapping[str, Any]) -> Iterator[str]:
    """Scheduled and by hand only; the stack list with the sweeper role, the drift check with the
    prod role under the lease, the report in prod's environment reading runs and PRs, kept 90 days."""
    on = triggers(wf)
    if not isinstance(on, Mapping) or set(on) != {"schedule", "workflow_dispatch"}:
        yield f"audit: must run on a schedule and by hand only, not {on}"
    stacks, drift, report = (only_job(wf, j) for j in ("stacks", "drift", "report"))
    yield from check_environment("audit/stacks", stacks, "sweeper")
    listing = 'python -m workflow.sweep_previews list --output "$RUNNER_TEMP/stacks.json"'
    if role(stacks) != "${{ vars.AWS_SWEEPER_ROLE_ARN }}" or index_of(run_lines(stacks), listing) < 0:
        yield "audit/stacks: lists the stacks by object name with the sweeper role (as the sweeper does)"
    yield from check_environment("audit/drift", drift, "prod")
    if role(drift) != "${{ vars.AWS_PROD_ROLE_ARN }}" or index_of(run_lines(drift), DRIFT_LINE) < 0:
        yield f"audit/drift: the drift check of prod runs with the prod role under the lease: `{DRIFT_LINE}`"
    # The program must see the deploy's settings, or a setting it lacks reads as drift.
    up_env = next((st.get("env") for st in steps(only_job(workflows_deploy(), "deploy")) if st.get("id") == "up"), None)
    drift_env = next((st.get("env") for st in steps(drift) if DRIFT_LINE in str(st.get("run"))), None)
    # (but for the CLI's debug-commands switch, which `up` needs for --event-log and the program never sees)
    if up_env is None or drift_env != {k: v for k, v in up_env.items() if k != "PULUMI_DEBUG_COMMANDS"}:
        yield "audit/drift: the drift check runs with the same environment as deploy's `pulumi up`"
    yield from check_environment("audit/report", report, "prod")
    if dict(report.get("permissions") or {}) != {"id-token": "write", "contents": "read", "actions": "read", "pull-requests": "read"}:
        yield "audit/report: needs exactly id-token: write, contents: read, actions: read, pull-requests: read"
    if sorted(report.get("needs") or []) != ["drift", "stacks"] or "!cancelled()" not in str(report.get("if")):
        yield "audit/report: runs after stacks and drift, also when they failed (their part is then missing)"
    if index_of(run_lines(report), AUDIT_REPORT) < 0:
        yield f"audit/report: missing `{AUDIT_REPORT}`"
    kept = [s for s in uses_of(report, "actions/upload-artifact") if "audit-report.json" in str((s.get("with") or {}).get("path"))]
    if not kept or str((kept[0].get("with") or {}).get("retention-days")) != "90":
        yield "audit/report: the JSON report is an artifact kept 90 days"
    dispatch = (on or {}).get("workflow_dispatch") if isinstance(on, Mapping) else None
    step = next((s for s in steps(report) if AUDIT_REPORT in str(s.get("run"))), {})
    if "${{" in str(step.get("run")) or (step.get("env") or {}).get("SINCE") != "${{ inputs.since || '1d' }}" or not dispatch:
        yield "audit/report: the period comes from the dispatch input through the environment, never into the script"


CHECKS = {
    "deploy": check_deploy,
    "preview": check_preview,
    "cleanup": check_cleanup,
    "sweeper": check_sweeper,
    "security": check_security,
    "audit": check_audit,
}


TIMELINE = 'python -m workflow.timeline --events "$RUNNER_TEMP/events.jsonl" --stack "$STACK" --logs --json "$RUNNER_TEMP/timeline.json"'


def check_timeline(name: str, wf: Mapping[str, Any]) -> Iterator[str]:
    """`up` keeps the engine's event log; the timeline (gantt, groups, phase durations) follows it."""
    job = only_job(wf, name)
    lines = run_lines(job)
    up_line = PR_UP_LINE if name == "preview" else UP_LINE
    up = next((line for line in lines if line.startswith(up_line)), "")
    if not up.endswith(' --event-log "$RUNNER_TEMP/events.jsonl"'):
        yield f"{name}: `pulumi up` must keep the engine's event log (--event-log \"$RUNNER_TEMP/events.jsonl\")"
    # The CLI has `--event-log` only with debug commands on ("unknown flag: --event-log" otherwise).
    up_step = next((s for s in steps(job) if "--event-log" in str(s.get("run"))), {})
    if str((up_step.get("env") or {}).get("PULUMI_DEBUG_COMMANDS")).lower() != "true":
        yield f"{name}: `pulumi up --event-log` needs PULUMI_DEBUG_COMMANDS: \"true\" in its step's env"
    if not 0 <= index_of(lines, up or up_line) < index_of(lines, TIMELINE):
        yield f"{name}: the run timeline with each step's log in a group follows `up`: `{TIMELINE}`"
    step = next((s for s in steps(job) if TIMELINE in str(s.get("run"))), {})
    if "!cancelled()" not in str(step.get("if")):
        yield f"{name}: the run timeline is drawn also when `up` failed"
    comment = index_of(lines, "python -m workflow.pr_comment")
    if name == "preview" and not (
        index_of(lines, TIMELINE) < comment and '--timeline "$RUNNER_TEMP/timeline.json"' in lines[comment]
    ):
        yield "preview: phase durations in the PR comment (`--timeline`) from the run timeline"


def violations(workflows: Workflows) -> list[str]:
    found = []
    for name, (text, wf) in workflows.items():
        if name in ("deploy", "preview"):
            found += check_timeline(name, wf)
        found += check_common(name, text, wf)
        found += check_secret_sources(name, wf)
        found += CHECKS[name](wf)
    found += check_shared(workflows)
    found += check_quarantine(workflows)
    return found


def test_the_workflows_keep_every_rule() -> None:
    assert violations(parse(load_texts())) == []


def test_every_workflow_file_is_checked() -> None:
    assert sorted(p.stem for p in WORKFLOWS.glob("*.y*ml")) == sorted(NAMES)


# (workflow, text to replace, replacement, expected fragment of a violation)
BROKEN = [
    pytest.param("deploy", "cancel-in-progress: false", "cancel-in-progress: true", "deploy-prod", id="deploy-cancels"),
    pytest.param("deploy", "run: python -m workflow.masks", "run: echo no masks", "secrets are not masked", id="deploy-no-masks"),
    pytest.param("cleanup", "run: python -m workflow.masks", "run: echo no masks", "secrets are not masked", id="cleanup-no-masks"),
    pytest.param("deploy", "group: deploy-prod", "group: deploy-${{ github.sha }}", "deploy-prod", id="deploy-parallel"),
    pytest.param("deploy", "    environment: production\n", "", "must run in the `production` environment", id="deploy-without-environment"),
    pytest.param("deploy", "    environment: production\n", "    environment: preview\n", "must run in the `production` environment", id="deploy-in-the-preview-environment"),
    pytest.param("preview", "    environment: preview\n", "", "must run in the `preview` environment", id="preview-without-environment"),
    pytest.param("preview", "    environment: preview\n", "    environment: production\n", "must run in the `preview` environment", id="preview-in-prods-environment"),
    pytest.param("cleanup", "    environment: preview\n", "", "reads secrets outside an environment", id="cleanup-repository-secrets"),
    pytest.param("sweeper", "    environment: preview-sweeper\n    strategy:", "    strategy:", "sweeper/teardown: must run in the `preview-sweeper`", id="sweeper-teardown-without-environment"),
    pytest.param("preview", "secrets.PREVIEW_DATABASE_URL", "secrets.DATABASE_URL", "DATABASE_URL comes from secrets.DATABASE_URL", id="preview-prods-database"),
    pytest.param("cleanup", "secrets.PREVIEW_CLOUDFLARE_API_TOKEN", "secrets.CLOUDFLARE_API_TOKEN", "comes from secrets.CLOUDFLARE_API_TOKEN", id="cleanup-prods-cloudflare-token"),
    pytest.param("sweeper", "secrets.PREVIEW_ALERT_WEBHOOK_URL", "secrets.ALERT_WEBHOOK_URL", "comes from secrets.ALERT_WEBHOOK_URL", id="sweeper-prods-webhook"),
    pytest.param("deploy", "DATABASE_URL: ${{ secrets.DATABASE_URL }}", "DATABASE_URL: ${{ secrets.PREVIEW_DATABASE_URL }}", "comes from secrets.PREVIEW_DATABASE_URL", id="deploy-previews-database"),
    pytest.param("preview", "CLOUDFLARE_API_TOKEN: ${{ secrets.PREVIEW_CLOUDFLARE_API_TOKEN }}", "API_TOKEN: ${{ secrets.PREVIEW_CLOUDFLARE_API_TOKEN }}", "API_TOKEN comes from", id="preview-secret-under-another-name"),
    pytest.param("preview", "        run: >-\n          python -m workflow.pr_comment", "        run: >-\n          pulumi stack output --json | python -m workflow.deploy_record --stack \"$STACK\"\n          python -m workflow.pr_comment", "no deploy record from a PR", id="preview-writes-the-audit-table"),
    pytest.param("deploy", "        run: python -m workflow.preview_database\n", "        run: echo skipped\n", "missing command `python -m workflow.preview_database", id="deploy-no-preview-database-role"),
    pytest.param("audit", "          RUNTIME_DATABASE_URL: ${{ secrets.RUNTIME_DATABASE_URL }}\n          CLOUDFLARE_API_TOKEN: ${{ secrets.CLOUDFLARE_API_TOKEN }}\n          CLOUDFLARE_ACCOUNT_ID", "          CLOUDFLARE_API_TOKEN: ${{ secrets.CLOUDFLARE_API_TOKEN }}\n          CLOUDFLARE_ACCOUNT_ID", "same environment as deploy", id="audit-drift-without-a-setting"),
    pytest.param("audit", "      actions: read\n", "      actions: write\n", "unexpected permission actions", id="audit-writes-actions"),
    pytest.param("audit", "          retention-days: 90", "          retention-days: 5", "kept 90 days", id="audit-report-not-kept"),
    pytest.param("audit", 'run: python -m workflow.lease run --stack "$STACK" -- python -m workflow.drift', "run: python -m workflow.drift", "under the lease", id="audit-drift-unleased"),
    pytest.param("audit", "    if: ${{ !cancelled() }}\n    runs-on: ubuntu-24.04\n    timeout-minutes: 20", "    runs-on: ubuntu-24.04\n    timeout-minutes: 20", "also when they failed", id="audit-report-skipped-after-a-failure"),
    pytest.param("audit", "          role-to-assume: ${{ vars.AWS_SWEEPER_ROLE_ARN }}\n          role-session-name: webstack-audit-stacks", "          role-to-assume: ${{ vars.AWS_PROD_ROLE_ARN }}\n          role-session-name: webstack-audit-stacks", "with the sweeper role", id="audit-stacks-with-prod-role"),
    pytest.param("audit", 'run: python -m workflow.sweep_previews list --output "$RUNNER_TEMP/stacks.json"', 'run: pulumi stack ls --json > "$RUNNER_TEMP/stacks.json"', "by object name", id="audit-stacks-opens-every-checkpoint"),
    pytest.param("audit", '          python-version: "3.11"\n\n      - name: Program virtualenv first on PATH\n        run: |\n          python -m venv .venv\n          .venv/bin/pip install -r requirements.txt\n          echo "$PWD/.venv/bin" >> "$GITHUB_PATH"\n\n      - uses: aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2\n        with:\n          role-to-assume: ${{ vars.AWS_SWEEPER_ROLE_ARN }}', '          python-version: "3.11"\n          cache: pip\n\n      - name: Program virtualenv first on PATH\n        run: |\n          python -m venv .venv\n          .venv/bin/pip install -r requirements.txt\n          echo "$PWD/.venv/bin" >> "$GITHUB_PATH"\n\n      - uses: aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2\n        with:\n          role-to-assume: ${{ vars.AWS_SWEEPER_ROLE_ARN }}', "audit/stacks: writes an Actions cache", id="audit-stacks-writes-a-cache"),
    pytest.param("audit", 'python -m workflow.audit report --since "$SINCE" --alert', 'python -m workflow.audit report --since "${{ inputs.since }}" --alert', "missing `python -m workflow.audit report", id="audit-input-in-the-script"),
    pytest.param("deploy", "        run: python -m workflow.ddl_audit install\n", "        run: echo skipped\n", "missing command `python -m workflow.ddl_audit install", id="deploy-no-ddl-audit"),
    pytest.param("deploy", " --sweeper-environment preview-sweeper", "", "name exactly the environments", id="deploy-pack-config-forgets-the-sweeper"),
    pytest.param("deploy", "--sweeper-environment preview-sweeper", "--preview-environment preview-sweeper", "name exactly the environments", id="deploy-pack-config-lets-previews-in-as-the-sweeper"),
    pytest.param("sweeper", "python -m workflow.teardown_preview --pr \"$PR\"", "bash -c 'pulumi stack export --stack \"$STACK\" > s.json && pulumi stack import --file s.json && pulumi destroy --yes --stack \"$STACK\"'", "missing command", id="sweeper-destroys-the-state"),
    pytest.param("sweeper", "      # Asked again inside", "      - name: pulumi\n        run: pulumi destroy --yes --stack \"$STACK\"\n\n      # Asked again inside", "runs Pulumi", id="sweeper-runs-pulumi"),
    pytest.param("sweeper", "          python -m workflow.lease run --stack \"$STACK\" --pulumi '' -- python -m workflow.teardown_preview", "          python -m workflow.teardown_preview", "missing command", id="sweeper-teardown-unleased"),
    pytest.param("sweeper", "vars.AWS_SWEEPER_ROLE_ARN", "vars.AWS_PREVIEW_ROLE_ARN", "sweeper role", id="sweeper-with-the-preview-role"),
    pytest.param("sweeper", '          python-version: "3.11"\n\n      - name: Program virtualenv first on PATH', '          python-version: "3.11"\n          cache: pip\n          cache-dependency-path: requirements.txt\n\n      - name: Program virtualenv first on PATH', "writes an Actions cache", id="sweeper-writes-the-pip-cache"),
    pytest.param("cleanup", '          python-version: "3.11"\n', '          python-version: "3.11"\n          cache: pip\n', "cleanup/destroy: writes an Actions cache", id="cleanup-writes-the-pip-cache"),
    pytest.param("deploy", "--prod-environment production", "--prod-environment production --prod-environment staging", "name exactly the environments", id="deploy-pack-config-trusts-more"),
    pytest.param("cleanup", '          python -m workflow.verify_state --stack "$STACK" --state "$state"\n', "", "missing command `python -m workflow.verify_state", id="cleanup-destroys-unchecked"),
    pytest.param("deploy", "branches: [main]", "branches: [main, develop]", "push to main only", id="deploy-branches"),
    pytest.param("deploy", 'pulumi stack select "$STACK"', 'pulumi stack select --create "$STACK"', "never create", id="deploy-creates-prod"),
    pytest.param("deploy", "STACK: prod", "STACK: production", "STACK must be prod", id="deploy-stack"),
    pytest.param("deploy", "vars.AWS_PROD_ROLE_ARN", "vars.AWS_PREVIEW_ROLE_ARN", "prod role", id="deploy-role"),
    pytest.param("deploy", "run: python -m workflow.plan_report", "run: echo", "missing command `python -m workflow.plan_report", id="deploy-no-report"),
    pytest.param("deploy", '-- pulumi up --yes --stack "$STACK" --policy-pack policy', '-- pulumi up --yes --skip-preview', "missing command `python -m workflow.lease run --stack \"$STACK\" -- pulumi up", id="deploy-up-stack"),
    pytest.param("deploy", '-- pulumi up --yes --stack "$STACK" --policy-pack policy', '-- pulumi up --yes --stack "$STACK"', "missing command `python -m workflow.lease run --stack \"$STACK\" -- pulumi up", id="deploy-up-without-policy-pack"),
    pytest.param("deploy", 'run: python -m workflow.lease run --stack "$STACK" -- pulumi up', "run: pulumi up", "outside the lease", id="deploy-up-unleased"),
    pytest.param("preview", 'run: python -m workflow.lease run --stack "$STACK" -- pulumi up', "run: pulumi up", "outside the lease", id="preview-up-unleased"),
    pytest.param("deploy", 'python -m workflow.lease run --stack "$STACK" -- pulumi up', "python -m workflow.lease run --stack preview-pr-1 -- pulumi up", "outside the lease", id="deploy-up-under-another-stacks-lease"),
    pytest.param("preview", "        run: >-\n          python -m workflow.pr_comment", "        run: >-\n          pulumi destroy --yes --stack \"$STACK\"\n          python -m workflow.pr_comment", "outside the lease", id="preview-destroys-unleased"),
    pytest.param("cleanup", "          python -m workflow.lease run --stack \"$STACK\" -- bash -euo pipefail -c '\n", "", "outside the lease", id="cleanup-destroy-unleased"),
    pytest.param("cleanup", "          # ... then destroy exactly the checked copy", "          # ... then destroy the checked copy (it's", "a quote inside the leased block", id="cleanup-quote-ends-the-leased-block"),
    pytest.param("preview", '--config-file Pulumi.preview.yaml --policy-pack .policy-base/policy --policy-pack-config "$RUNNER_TEMP/policy-config.json" >', '--config-file Pulumi.preview.yaml --policy-pack-config "$RUNNER_TEMP/policy-config.json" >', "missing command `pulumi preview", id="preview-without-policy-pack"),
    pytest.param("preview", '--config-file Pulumi.preview.yaml --policy-pack .policy-base/policy --policy-pack-config "$RUNNER_TEMP/policy-config.json" >', '--config-file Pulumi.preview.yaml --policy-pack policy --policy-pack-config "$RUNNER_TEMP/policy-config.json" >', "missing command `pulumi preview", id="preview-runs-the-prs-own-pack"),
    pytest.param("preview", "ref: ${{ github.event.pull_request.base.sha }}", "ref: ${{ github.event.pull_request.head.sha }}", "checkout of the base commit", id="preview-pack-from-the-head-commit"),
    pytest.param("preview", "      - name: Policy pack config\n        working-directory: .policy-base\n", "      - name: Policy pack config\n", "must run in the base branch's checkout", id="preview-pack-config-from-the-pr"),
    pytest.param("deploy", ' --policy-pack-config "$RUNNER_TEMP/policy-config.json" --event-log', " --event-log", "missing command `python -m workflow.lease run", id="deploy-up-without-pack-config"),
    pytest.param("deploy", ' --event-log "$RUNNER_TEMP/events.jsonl"\n', "\n", "the engine's event log", id="deploy-up-without-event-log"),
    pytest.param("preview", "--stack \"$STACK\" --logs --json", "--stack \"$STACK\" --json", "each step's log in a group", id="preview-timeline-without-groups"),
    pytest.param("preview", '          --timeline "$RUNNER_TEMP/timeline.json"\n', "", "phase durations in the PR comment", id="preview-comment-without-phases"),
    pytest.param("preview", ' --policy-pack-config "$RUNNER_TEMP/policy-config.json" >', " >", "missing command `pulumi preview", id="preview-without-pack-config"),
    pytest.param("deploy", "REPOSITORY: ${{ github.repository }}", "REPOSITORY: org/repo", "this run's repository", id="deploy-pack-config-fixed-repository"),
    pytest.param("preview", "REPOSITORY: ${{ github.repository }}", "REPOSITORY: ${{ github.event.pull_request.head.repo.full_name }}", "this run's repository", id="preview-pack-config-head-repository"),
    pytest.param("deploy", "    needs: security\n", "", "security workflow", id="deploy-ungated"),
    pytest.param(
        "deploy", "      - name: Install the Pulumi CLI\n",
        "      - name: Restore build outputs\n        uses: actions/cache/restore@5a3ec84eff668545956fd18022155c47e93e2684 # v4.2.3\n"
        "        with:\n          path: .build/${{ env.STACK }}\n          key: builds-${{ github.sha }}\n\n"
        "      - name: Install the Pulumi CLI\n",
        "build outputs are not cached", id="deploy-build-outputs-cached",
    ),
    pytest.param("preview", "types: [opened, synchronize, reopened]", "types: [opened]", "opened/synchronize/reopened", id="preview-types"),
    pytest.param("preview", "  pull_request:\n", "  pull_request_target:\n", "pull_request_target", id="preview-target"),
    pytest.param("preview", " --secrets-provider \"$PULUMI_SECRETS_PROVIDER\"", "", "missing command `pulumi stack select --create", id="preview-no-kms"),
    pytest.param("preview", "      STACK: preview-pr-${{ github.event.pull_request.number }}", "      STACK: preview", "STACK must be preview-pr-", id="preview-stack"),
    pytest.param("preview", "group: preview-pr-${{ github.event.pull_request.number }}", "group: preview-${{ github.run_id }}", "share the concurrency group", id="preview-group"),
    pytest.param("preview", "    if: github.event.pull_request.head.repo.full_name == github.repository\n", "", "fork PRs", id="preview-forks"),
    pytest.param("preview", "updateComment", "deleteComment", "edited when it exists", id="preview-duplicate-comments"),
    pytest.param("preview", "    permissions:\n      pull-requests: write\n", "    permissions:\n      pull-requests: write\n      contents: read\n      id-token: write\n", "nothing but pull-requests", id="preview-comment-privileges"),
    pytest.param("preview", "      contents: read\n      issues: read\n    outputs:", "      contents: read\n      issues: read\n      pull-requests: write\n    outputs:", "pull-requests: write without a comment step", id="preview-job-writes-prs"),
    pytest.param("cleanup", "cancel-in-progress: false", "cancel-in-progress: true", "cancel-in-progress must be false", id="cleanup-cancels"),
    pytest.param("cleanup", "group: preview-pr-${{ github.event.pull_request.number }}", "group: cleanup-${{ github.event.pull_request.number }}", "share the concurrency group", id="cleanup-group"),
    pytest.param("cleanup", "types: [closed]", "types: [closed, reopened]", "closed only", id="cleanup-types"),
    pytest.param("cleanup", '          pulumi stack rm --yes --force "$STACK"\n', "", "missing command `pulumi stack rm", id="cleanup-no-rm"),
    pytest.param("cleanup", 'PULUMI_BACKEND_URL="$checked" pulumi destroy --yes --stack "$STACK" --config-file Pulumi.preview.yaml\n          pulumi stack rm --yes --force "$STACK"', 'pulumi stack rm --yes --force "$STACK"\n          PULUMI_BACKEND_URL="$checked" pulumi destroy --yes --stack "$STACK" --config-file Pulumi.preview.yaml', "out of order", id="cleanup-rm-first"),
    pytest.param("cleanup", 'grep -q "no stack named"', 'grep -q "error"', "already gone", id="cleanup-not-idempotent"),
    pytest.param("cleanup", "vars.AWS_CLEANUP_ROLE_ARN", "vars.AWS_PROD_ROLE_ARN", "cleanup role", id="cleanup-role"),
    pytest.param("cleanup", "vars.AWS_CLEANUP_ROLE_ARN", "vars.AWS_PREVIEW_ROLE_ARN", "cleanup role", id="cleanup-with-the-preview-role"),
    pytest.param("sweeper", "group: preview-pr-${{ matrix.pr }}", "group: sweeper", "join the PR's concurrency group", id="sweeper-group"),
    pytest.param("sweeper", "        run: python -m workflow.sweep_previews check", "        run: echo check", "missing command `python -m workflow.sweep_previews check", id="sweeper-no-recheck"),
    pytest.param("sweeper", "  workflow_dispatch:\n", "", "schedule and workflow_dispatch", id="sweeper-no-manual"),
    pytest.param("security", "          extra_args: --results=verified,unverified,unknown", "          extra_args: --only-verified", "every finding", id="security-only-verified"),
    pytest.param("security", "--severity-level high --confidence-level low\n", "--severity-level high --confidence-level low --exit-zero\n", "bandit must block", id="security-bandit-never-fails"),
    pytest.param("security", "zizmor --offline --min-severity high", "zizmor --offline --min-severity high --no-exit-codes", "zizmor must block", id="security-zizmor-never-fails"),
    pytest.param("security", "          fetch-depth: 0\n", "", "fetch-depth", id="security-shallow"),
    pytest.param("security", "      - uses: trufflesecurity/trufflehog@", "      - continue-on-error: true\n        uses: trufflesecurity/trufflehog@", "continue on error", id="security-soft-gate"),
    pytest.param("security", "  pull_request:\n", "", "push, pull_request", id="security-no-pr"),
    pytest.param("deploy", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "actions/checkout@v4", "not pinned to a full commit SHA", id="pin-tag"),
    pytest.param("preview", "actions/github-script@60a0d83039c74a4aee543508d2ffcb1c3799cdea # v7.0.1", "actions/github-script@60a0d83", "not pinned to a full commit SHA", id="pin-short-sha"),
    pytest.param("cleanup", "e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2", "e3dd6a429d7300a6a4c196c26e071d42e0343502", "without a `# vX.Y.Z` comment", id="pin-no-comment"),
    pytest.param("sweeper", "permissions: {}", "permissions: write-all", "top-level permissions", id="perm-write-all"),
    pytest.param("security", "    permissions:\n      contents: read\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n        with:\n          fetch-depth: 0", "    permissions:\n      contents: write\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n        with:\n          fetch-depth: 0", "contents must be read-only", id="perm-contents-write"),
    pytest.param("security", "    permissions:\n      contents: read\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n        with:\n          fetch-depth: 0", "    permissions:\n      contents: read\n      id-token: write\n    steps:\n      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n        with:\n          fetch-depth: 0", "id-token: write without AWS OIDC", id="perm-idtoken-unused"),
    pytest.param("deploy", "    permissions:\n      id-token: write\n      contents: read\n", "    permissions:\n      contents: read\n", "needs id-token: write", id="perm-idtoken-missing"),
    pytest.param("deploy", "      PULUMI_SECRETS_PROVIDER: ${{ vars.PULUMI_SECRETS_PROVIDER }}\n", "      PULUMI_SECRETS_PROVIDER: ${{ vars.PULUMI_SECRETS_PROVIDER }}\n      DATABASE_URL: ${{ secrets.DATABASE_URL }}\n", "secrets in the job-level env", id="secret-job-env"),
    pytest.param("deploy", "run: pulumi login \"$PULUMI_BACKEND_URL\"", "run: pulumi login \"$PULUMI_BACKEND_URL\" --token ${{ secrets.DATABASE_URL }}", "secrets outside the step's env", id="secret-in-run"),
    pytest.param("deploy", "        run: python -m workflow.plan_report", "        env:\n          TOKEN: ${{ secrets.CLOUDFLARE_API_TOKEN }}\n        run: python -m workflow.plan_report", "does not run pulumi", id="secret-non-pulumi-step"),
    pytest.param("preview", "          persist-credentials: false\n", "", "persist-credentials", id="checkout-persists-token"),
    pytest.param("cleanup", '          echo "$PWD/.venv/bin" >> "$GITHUB_PATH"\n', "", "missing `echo \"$PWD/.venv/bin\"", id="venv-not-on-path"),
    pytest.param("cleanup", "pulumi-version: 3.274.1", "pulumi-version: 3.272.0", "is not the CLI the tests run", id="cli-version-mismatch"),
    pytest.param("preview", ' --config-file Pulumi.preview.yaml --policy-pack .policy-base/policy --policy-pack-config "$RUNNER_TEMP/policy-config.json" --event-log', ' --policy-pack .policy-base/policy --policy-pack-config "$RUNNER_TEMP/policy-config.json" --event-log', "lacks --config-file Pulumi.preview.yaml", id="preview-up-without-template"),
    pytest.param("cleanup", ' --config-file Pulumi.preview.yaml\n', "\n", "lacks --config-file Pulumi.preview.yaml", id="cleanup-destroy-without-template"),
    pytest.param("deploy", '          PULUMI_DEBUG_COMMANDS: "true"\n', "", "needs PULUMI_DEBUG_COMMANDS", id="deploy-event-log-without-debug-commands"),
    pytest.param("preview", '          PULUMI_DEBUG_COMMANDS: "true"\n', "", "needs PULUMI_DEBUG_COMMANDS", id="preview-event-log-without-debug-commands"),
    # The security quarantine: who may write issues, which jobs check for an open one.
    pytest.param("deploy", "      contents: read\n      issues: read\n    env:\n      STACK: prod", "      contents: read\n      issues: write\n    env:\n      STACK: prod", "issues: write only in the quarantine job", id="quarantine-deploy-writes-issues"),
    pytest.param("security", "    permissions:\n      contents: read\n    steps:", "    permissions:\n      contents: read\n      issues: write\n    steps:", "issues: write only in the quarantine job", id="quarantine-scan-job-writes-issues"),
    pytest.param("security", "      contents: read\n      issues: write\n    steps:", "      contents: read\n      issues: write\n      actions: write\n    steps:", "holds contents: read and issues: write, nothing else", id="quarantine-job-holds-more"),
    pytest.param("sweeper", "      contents: read\n      pull-requests: read\n    outputs:", "      contents: read\n      pull-requests: read\n      issues: write\n    outputs:", "issues: write only in the quarantine job", id="quarantine-sweeper-writes-issues"),
    pytest.param("deploy", "      contents: read\n      issues: write\n", "      contents: read\n", "security call must grant contents: read and issues: write", id="quarantine-no-issue-on-main"),
    pytest.param("deploy", "        run: python -m workflow.quarantine check\n", "        run: echo no gate\n", "deploy/deploy: runs `pulumi up` without the quarantine gate", id="quarantine-deploy-ungated"),
    pytest.param("preview", "        run: python -m workflow.quarantine check\n", "        run: echo no gate\n", "preview/preview: runs `pulumi up` without the quarantine gate", id="quarantine-preview-ungated"),
    pytest.param("preview", "      - name: Security quarantine gate\n", "      - name: Security quarantine gate\n        continue-on-error: true\n", "must always run and always stop", id="quarantine-gate-soft"),
    pytest.param("deploy", "      - name: Security quarantine gate\n", "      - name: Security quarantine gate\n        if: github.actor != 'dependabot[bot]'\n", "must always run and always stop", id="quarantine-gate-conditional"),
    pytest.param("preview", "          GITHUB_TOKEN: ${{ github.token }}\n        run: python -m workflow.quarantine check", "          GITHUB_TOKEN: ${{ vars.QUARANTINE_TOKEN }}\n        run: python -m workflow.quarantine check", "with the job's own token", id="quarantine-gate-other-token"),
    pytest.param("deploy", "      contents: read\n      issues: read\n", "      contents: read\n", "the quarantine gate needs issues: read", id="quarantine-gate-cannot-read"),
    pytest.param("deploy", "      - name: Security quarantine gate\n", "      - uses: aws-actions/configure-aws-credentials@e3dd6a429d7300a6a4c196c26e071d42e0343502 # v4.0.2\n        with:\n          role-to-assume: ${{ vars.AWS_PROD_ROLE_ARN }}\n          aws-region: ${{ vars.AWS_REGION }}\n\n      - name: Security quarantine gate\n", "deploy/deploy: the quarantine gate must run before the AWS credentials", id="quarantine-gate-late"),
    pytest.param("cleanup", "      - name: pulumi login (S3 backend)\n", "      - name: quarantine\n        env:\n          GITHUB_TOKEN: ${{ github.token }}\n        run: python -m workflow.quarantine check\n\n      - name: pulumi login (S3 backend)\n", "cleanup/destroy: a job that runs no `pulumi up` has no quarantine gate", id="quarantine-cleanup-gated"),
    pytest.param("sweeper", "      - name: Is the pull request still closed?\n", "      - name: quarantine\n        env:\n          GITHUB_TOKEN: ${{ github.token }}\n        run: python -m workflow.quarantine check\n\n      - name: Is the pull request still closed?\n", "sweeper/teardown: a job that runs no `pulumi up` has no quarantine gate", id="quarantine-sweeper-destroy-gated"),
    pytest.param("security", "    environment: security-quarantine\n", "", "reads secrets outside an environment", id="quarantine-job-without-environment"),
    pytest.param("security", "    environment: security-quarantine\n", "    environment: production\n", "must run in the `security-quarantine` environment", id="quarantine-job-in-production"),
    pytest.param("security", "ALERT_WEBHOOK_URL: ${{ secrets.SECURITY_ALERT_WEBHOOK_URL }}\n        run: python -m workflow.quarantine", "ALERT_WEBHOOK_URL: ${{ secrets.ALERT_WEBHOOK_URL }}\n        run: python -m workflow.quarantine", "comes from secrets.ALERT_WEBHOOK_URL", id="quarantine-prods-webhook"),
    pytest.param("security", "--results=verified --json", "--results=verified,unverified --json", "verified results only", id="quarantine-unverified"),
    pytest.param("security", "git file:///tmp/ --results=verified", "git file:///tmp/ --since-commit HEAD~20 --results=verified", "all of the history", id="quarantine-partial-history"),
    pytest.param("security", "ghcr.io/trufflesecurity/trufflehog:3.96.0\n", "ghcr.io/trufflesecurity/trufflehog:latest\n", "same trufflehog release", id="quarantine-floating-scanner"),
    pytest.param("security", '          > "$RUNNER_TEMP/verified-findings.jsonl"\n', "\n", "never the log", id="quarantine-findings-in-the-log"),
    pytest.param("security", 'open --findings "$RUNNER_TEMP/verified-findings.jsonl"', "open --findings /dev/null", "reads the scan's findings", id="quarantine-reads-nothing"),
    pytest.param("security", '  schedule:\n    - cron: "41 5 * * 1"\n', "", "must run weekly", id="quarantine-no-schedule"),
    pytest.param("security", '    - cron: "41 5 * * 1"', '    - cron: "41 5 * * *"', "runs weekly", id="quarantine-daily"),
    pytest.param("security", "needs.secrets.result == 'failure'", "needs.secrets.result == 'success'", "after a failed secret scan", id="quarantine-only-on-success"),
    pytest.param("security", "    if: github.event_name != 'schedule' && github.event_name != 'workflow_dispatch'\n", "    if: github.event_name == 'push'\n", "must run on every push, pull request", id="quarantine-scan-skips-prs"),
    pytest.param("security", "      group: security-quarantine\n", "      group: security-${{ github.run_id }}\n", "one quarantine writer at a time", id="quarantine-parallel-writers"),
    pytest.param("security", "        id: open\n", "        id: open\n        continue-on-error: true\n", "must not continue on error", id="quarantine-soft"),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), BROKEN)
def test_a_broken_copy_is_caught(name: str, old: str, new: str, expected: str) -> None:
    texts = load_texts()
    assert old in texts[name], f"the case no longer matches {name}.yml: {old!r}"
    texts[name] = texts[name].replace(old, new, 1)

    found = violations(parse(texts))

    assert any(expected in v for v in found), found


def test_no_workflow_names_a_workspace_of_its_own() -> None:
    # Caches and paths come from the stack's appDir (`workflow.app_dir`), never a literal path.
    for name in NAMES:
        text = (WORKFLOWS / f"{name}.yml").read_text()
        assert "examples/app" not in text, name
        if "steps.app.outputs" in text:
            assert "python -m workflow.app_dir" in text, name


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
def test_app_dir_is_the_stacks_setting(stack: str, capsys) -> None:
    from workflow import app_dir

    assert app_dir.main(["--stack", stack]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "dir=examples/app",
        "lockfile=examples/app/package-lock.json",
    ]


def test_app_dir_reads_the_stack_file_and_rejects_a_bad_stack(tmp_path, capsys) -> None:
    from components.settings import stack_setting

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.preview.yaml").write_text("config:\n  webstack:appDir: apps/mine\n")
    assert stack_setting("preview-pr-7", "appDir", root=tmp_path) == "apps/mine"
    assert stack_setting("prod", "appDir", root=tmp_path) == "examples/app"  # Pulumi.yaml's default

    from workflow import app_dir

    capsys.readouterr()
    assert app_dir.main(["--stack", "preview-pr-7\n"]) == 2
    assert "is not a stack name" in capsys.readouterr().err
