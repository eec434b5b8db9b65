"""Runs the repository's GitHub workflows for real, under nektos/act, as GitHub would run them here.

    runner = WorkflowRunner(root=..., repository=LocalRepository(...), github=GitHubStub(...),
                            secrets={...}, variables={...}, machine_env={...})
    record = runner.run("deploy.yml", "push", push_event(...))
    record.conclusion, record.jobs["deploy"].summary, record.jobs["deploy"].outputs

act (bin/act, sandbox/engine.py) runs the workflow file as the commit under test holds it, in host
mode (`-P ubuntu-24.04=-self-hosted`: the steps run on this machine, no Docker), every pinned
third-party action mapped to its local stand-in (`--local-repository OWNER/REPO@SHA=DIR`,
sandbox/actions/), offline. What GitHub itself does and act does not, this runner does:

- **the repository**: a bare git repository stands in for github.com (`LocalRepository`); pushes
  and pull requests are commits and refs in it (`refs/pull/N/head`, the merge commit
  `refs/pull/N/merge`, which a pull_request run checks out, as GitHub's GITHUB_SHA);
- **the API**: every run's GITHUB_API_URL is the GitHub stand-in (sandbox/github_api.py), which
  also records the run (its jobs, steps and conclusion for the audit report) and keeps the run's
  record here (job summaries, step outputs, annotations) for the tests;
- **environments** (.github/repository-settings.yml, workflow/repository_settings.py): a job whose
  environment's deployment branch rules refuse the run's ref fails before any step with GitHub's
  message ("Branch "x" is not allowed to deploy to production due to environment protection
  rules."); a job sees the secrets of its own environment and the repository's only (any other
  `secrets.X` is empty, as on GitHub), and its environment's variables in place of the
  repository's of the same name (the GitHub stand-in's; `vars.X` inside `${{ }}`). act knows
  none of this, so the runner gives act a copy of the workflow (and of the local workflows it
  calls) with exactly those changes; the jobs' checkout is the commit itself, untouched;
- **OIDC**: each job's identity (environment, `id-token` permission, job_workflow_ref) is
  registered with the GitHub stand-in, whose token service the configure-aws-credentials
  stand-in asks for the job's token;
- **masking**: act's `--json` log carries secrets and `::add-mask::` values in clear in some
  fields (the interpolated step text, the add-mask command's argument); every record is scrubbed
  of them before anything is kept;
- **a new runner per run**: a fresh HOME, workspace and RUNNER_TEMP, the image's PATH, no
  credentials; what the jobs may reuse comes from the cache stand-in (WEBSTACK_RUNNER_CACHE,
  shared by the runs of one `root`) and nothing else;
- **offline installs**: the runner machine's environment makes every `pip install` resolve from
  the wheelhouse and every npm install from the npm cache that .ci/setup built
  (sandbox/runner_packages.py: PIP_NO_INDEX, PIP_FIND_LINKS, npm_config_offline and a seeded
  `~/.npm`); the workflow files are what GitHub runs, and no run needs PyPI or npm.

Not reproduced (docs/workflows.md lists them with what covers each): `concurrency:` groups
(act ignores them: two runs overlap, and the stack lease is what serializes them), the workflow
token's per-job permissions (one token per run), required reviewers and wait timers.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets as secrets_module
import shutil
import subprocess  # act and git with list argv, no shell  # nosec B404
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sandbox import runner_packages
from sandbox.engine import BIN_DIR
from sandbox.github_api import GitHubStub, JobIdentity, RunRegistration, iso
from sandbox.process_tree import kill_tree
from workflow import repository_settings

REPO = Path(__file__).resolve().parents[1]
ACTIONS_DIR = REPO / "sandbox" / "actions"
STANDIN_PLUGINS = REPO / "sandbox" / "bin"
RUNNER_PYTHON = REPO / ".venv" / "bin" / "python"
WORKFLOWS = ".github/workflows"
PLATFORMS = ("ubuntu-24.04", "ubuntu-latest", "ubuntu-22.04")
USES = re.compile(r"^(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)(?P<path>/[^@]*)?@(?P<ref>\S+)$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
SECRET_REFERENCE = re.compile(r"(?<![\w.])secrets\.([A-Za-z_][A-Za-z0-9_]*)")
VARIABLE_REFERENCE = re.compile(r"(?<![\w.])vars\.([A-Za-z_][A-Za-z0-9_]*)")
ZERO_SHA = "0" * 40
DEFAULT_TIMEOUT = 45 * 60


class RunnerError(RuntimeError):
    """The run could not be set up as GitHub would run it; the message says why."""


# --- workflow files, read as act and GitHub read them ---------------------------------------


class _WorkflowLoader(yaml.SafeLoader):
    """YAML 1.2's booleans only: `on:` stays the key `on` (PyYAML would read it as True)."""


_WorkflowLoader.yaml_implicit_resolvers = {
    key: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_WorkflowLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


class _WorkflowDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_workflow(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_WorkflowLoader)  # noqa: S506 - a SafeLoader subclass  # nosec B506
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict):
        raise RunnerError(f"{path.name}: not a workflow (no jobs)")
    return document


def _dump_workflow(document: Mapping[str, Any]) -> str:
    return yaml.dump(dict(document), Dumper=_WorkflowDumper, sort_keys=False, width=10**6, allow_unicode=True)


def workflow_name(document: Mapping[str, Any], path: str) -> str:
    return str(document.get("name") or path)


def job_environment(job: Mapping[str, Any]) -> str | None:
    environment = job.get("environment")
    if isinstance(environment, Mapping):
        environment = environment.get("name")
    if environment is None:
        return None
    if "${{" in str(environment):
        raise RunnerError(f"environment {environment!r}: an expression here is not supported by the local runner")
    return str(environment)


def has_id_token(job: Mapping[str, Any], workflow: Mapping[str, Any]) -> bool:
    permissions = job["permissions"] if "permissions" in job else workflow.get("permissions")
    if permissions == "write-all":
        return True
    return isinstance(permissions, Mapping) and permissions.get("id-token") == "write"


def called_workflows(document: Mapping[str, Any]) -> dict[str, str]:
    """job id -> `./.github/workflows/X.yml` for the jobs that call a local reusable workflow."""
    calls = {}
    for job_id, job in document["jobs"].items():
        uses = job.get("uses") if isinstance(job, Mapping) else None
        if isinstance(uses, str):
            if not uses.startswith("./"):
                raise RunnerError(f"job {job_id}: only local reusable workflows run here, not {uses}")
            calls[job_id] = uses.removeprefix("./")
    return calls


def action_uses(documents: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """(owner, repo, ref) of every remote action the workflows' steps use."""
    found = set()
    for document in documents:
        for job in document["jobs"].values():
            for step in (job.get("steps") or []) if isinstance(job, Mapping) else []:
                uses = step.get("uses") if isinstance(step, Mapping) else None
                if not isinstance(uses, str) or uses.startswith(("./", "docker://")):
                    continue
                match = USES.match(uses)
                if match is None:
                    raise RunnerError(f"cannot read `uses: {uses}`")
                found.add((match["owner"], match["repo"], match["ref"]))
    return found


def standin_dir(owner: str, repo: str) -> Path:
    directory = ACTIONS_DIR / owner / repo
    if not (directory.is_dir() and any(directory.rglob("action.yml"))):
        raise RunnerError(
            f"no local stand-in for the action {owner}/{repo}: add one under sandbox/actions/{owner}/{repo} "
            "(sandbox/actions/__init__.py says how)"
        )
    return directory


# --- what GitHub changes before act sees the workflow ----------------------------------------


def _scope_secrets(value: Any, available: set[str]) -> Any:
    """Every `secrets.X` inside `${{ }}` that the job may not see becomes '' (GitHub: empty)."""
    if isinstance(value, str):
        def expression(match: re.Match[str]) -> str:
            inner = SECRET_REFERENCE.sub(lambda m: m.group(0) if m.group(1) in available else "''", match.group(1))
            return "${{" + inner + "}}"

        return EXPRESSION.sub(expression, value)
    if isinstance(value, list):
        return [_scope_secrets(v, available) for v in value]
    if isinstance(value, dict):
        return {k: _scope_secrets(v, available) for k, v in value.items()}
    return value


def _environment_variables(value: Any, values: Mapping[str, str]) -> Any:
    """Every `vars.X` inside `${{ }}` that the job's environment sets becomes that value (GitHub: an
    environment's variable overrides the repository's of the same name; act knows only the latter)."""
    if isinstance(value, str):
        def literal(match: re.Match[str]) -> str:
            name = match.group(1)
            return "'" + values[name].replace("'", "''") + "'" if name in values else match.group(0)

        return EXPRESSION.sub(lambda m: "${{" + VARIABLE_REFERENCE.sub(literal, m.group(1)) + "}}", value)
    if isinstance(value, list):
        return [_environment_variables(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _environment_variables(v, values) for k, v in value.items()}
    return value


def _refused_job(job: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The job as GitHub runs one its environment refuses: it fails before any step."""
    kept = {k: copy.deepcopy(v) for k, v in job.items() if k in ("name", "needs", "if", "runs-on", "strategy")}
    kept.setdefault("runs-on", "ubuntu-24.04")
    kept["steps"] = [{"name": "Environment protection rules", "run": f"echo {json.dumps('::error::' + message)}; exit 1"}]
    return kept


def deployment_ref(event_name: str, event: Mapping[str, Any], ref: str) -> str:
    """The ref GitHub checks an environment's branch rules against: a pull_request run's head branch."""
    if event_name in ("pull_request", "pull_request_target"):
        head = ((event.get("pull_request") or {}).get("head") or {}).get("ref")
        return f"refs/heads/{head}" if head else ref
    return ref


def prepare_workflow(document: Mapping[str, Any], settings: repository_settings.Settings, ref: str,
                     environment_variables: Mapping[str, Mapping[str, str]] | None = None) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """The copy act runs: refused jobs replaced, secrets scoped to each job's environment, the
    variables its environment declares and sets (`environment_variables`: environment -> name ->
    value) in place of the repository's. Returns it with the names of the refused jobs."""
    prepared = copy.deepcopy(dict(document))
    refused = []
    for job_id, job in document["jobs"].items():
        if not isinstance(job, Mapping) or "uses" in job:
            continue
        environment_name = job_environment(job)
        available = set(settings.secrets) | {"GITHUB_TOKEN"}
        if environment_name is not None:
            environment = settings.environments.get(environment_name)
            if environment is None:
                # GitHub creates an unknown environment on first use, with no rules and no secrets.
                environment = repository_settings.Environment(environment_name, None, (), ())
            if not environment.allows(ref):
                prepared["jobs"][job_id] = _refused_job(job, environment.refusal(ref))
                refused.append(job_id)
                continue
            available |= set(environment.secrets)
            values = (environment_variables or {}).get(environment_name, {})
            job = _environment_variables(job, {n: values[n] for n in environment.variables if n in values})
        prepared["jobs"][job_id] = _scope_secrets(job, available)
    return prepared, refused


# --- the record of a run -----------------------------------------------------------------------


@dataclass
class Step:
    name: str
    stage: str
    result: str


@dataclass
class JobRecord:
    key: str
    """`job id` or `job id (matrix values)`; a called workflow's job as `caller/job`."""
    name: str
    result: str = ""
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    """step id -> {output name: value}."""
    summary: str = ""
    annotations: list[dict[str, str]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def step(self, name: str, stage: str = "Main") -> Step | None:
        return next((s for s in self.steps if s.stage == stage and s.name == name), None)


@dataclass
class RunRecord:
    run_id: int
    workflow: str
    event_name: str
    ref: str
    sha: str
    started: float
    ended: float = 0.0
    exit_code: int | None = None
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    refused_jobs: list[str] = field(default_factory=list)
    log_file: Path | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def conclusion(self) -> str:
        results = [j.result for j in self.jobs.values()]
        if any(r == "failure" for r in results) or self.exit_code not in (0, None):
            return "failure"
        return "success"

    def job(self, key: str) -> JobRecord:
        if key not in self.jobs:
            raise KeyError(f"run {self.run_id} ({self.workflow}) has no job {key!r}; it has {sorted(self.jobs)}")
        return self.jobs[key]

    def text(self) -> str:
        """Everything the run printed and wrote, as kept (masked): logs, summaries, annotations, outputs."""
        parts = []
        for job in self.jobs.values():
            parts += job.log
            parts.append(job.summary)
            parts += [json.dumps(a) for a in job.annotations]
            parts += [json.dumps(o) for o in job.outputs.values()]
        return "\n".join(parts)

    def failure_report(self, lines: int = 60) -> str:
        failed = [j for j in self.jobs.values() if j.result == "failure"] or list(self.jobs.values())
        report = [f"run {self.run_id} of {self.workflow} ({self.event_name} {self.ref}): {self.conclusion}, act exit {self.exit_code}"]
        for job in failed:
            report.append(f"--- job {job.key}: {job.result}; steps: " + ", ".join(f"{s.name}[{s.stage}]={s.result}" for s in job.steps))
            report += [f"  {a}" for a in job.annotations]
            report += job.log[-lines:]
        return "\n".join(report)


class _Masker:
    def __init__(self, values: Iterable[str]):
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        for candidate in (value, *value.splitlines()):
            if len(candidate.strip()) >= 3:
                self._values.add(candidate.strip())

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in sorted(self._values, key=len, reverse=True):
                if secret in value:
                    value = value.replace(secret, "***")
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value


def _job_key(entry: Mapping[str, Any]) -> str:
    matrix = entry.get("matrix") or {}
    base = str(entry.get("jobID") or entry.get("job") or "?")
    return f"{base} ({', '.join(str(v) for v in matrix.values())})" if matrix else base


class _RecordBuilder:
    """Turns act's JSON log lines into the run's record, masking as it goes."""

    def __init__(self, record: RunRecord, masker: _Masker, log_file: Path):
        self.record = record
        self.masker = masker
        self.log = log_file.open("w", encoding="utf-8")

    def feed(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"msg": line.rstrip("\n"), "level": "info"}
        if not isinstance(entry, dict):
            return
        if entry.get("command") == "add-mask":
            self.masker.add(str(entry.get("arg") or ""))
            entry.pop("arg", None)
            entry.pop("raw", None)
        entry = self.masker(entry)
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()
        if "jobID" not in entry and "job" not in entry:
            return
        key = _job_key(entry)
        job = self.record.jobs.setdefault(key, JobRecord(key=key, name=str(entry.get("job") or key)))
        message = str(entry.get("msg") or "")
        if entry.get("raw_output"):
            job.log.append(message.rstrip("\n"))
        elif message.strip():
            job.log.append(message.strip())
        command = entry.get("command")
        if "stepResult" in entry and entry.get("step") not in ("Set up job", "Complete job"):
            job.steps.append(Step(str(entry.get("step") or ""), str(entry.get("stage") or "Main"), str(entry["stepResult"])))
        if "jobResult" in entry:
            job.result = str(entry["jobResult"])
        if command == "set-output":
            step_id = ".".join(str(s) for s in entry.get("stepID") or []) or str(entry.get("step") or "")
            job.outputs.setdefault(step_id, {})[str(entry.get("name"))] = str(entry.get("arg") or "")
        elif command == "summary":
            job.summary += str(entry.get("content") or "")
        elif command in ("error", "warning", "notice"):
            annotation = {"level": command, "message": str(entry.get("arg") or "")}
            annotation.update({k: str(v) for k, v in (entry.get("kvPairs") or {}).items()})
            job.annotations.append(annotation)

    def close(self) -> None:
        self.log.close()


# --- the repository and its events -----------------------------------------------------------


def _git(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,  # noqa: S603,S607  # nosec
                          env={**os.environ, **(env or {})})  # fmt: skip
    if done.returncode != 0:
        raise RunnerError(f"git {' '.join(args)} (in {cwd}) failed: {done.stderr.strip()[-400:]}")
    return done.stdout


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "octocat",
    "GIT_AUTHOR_EMAIL": "octocat@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


@dataclass
class LocalRepository:
    """A bare repository that stands in for the one on github.com, with a work tree to commit in."""

    root: Path
    name: str = "org/repo"
    default_branch: str = "main"

    @property
    def git_dir(self) -> Path:
        return self.root / "github.git"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @classmethod
    def from_tree(cls, root: Path, source: Path, *, name: str = "org/repo", message: str = "Initial commit") -> LocalRepository:
        """A repository whose first commit on main is the files git tracks (or would) in `source`:
        the working tree as it is, uncommitted changes included, ignored files left out."""
        repository = cls(root=root, name=name)
        root.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--bare", "--initial-branch", repository.default_branch, str(repository.git_dir), cwd=root)
        _git("init", "--quiet", "--initial-branch", repository.default_branch, str(repository.work), cwd=root)
        files = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=source).split("\0")
        for relative in filter(None, files):
            src = source / relative
            if not src.is_file() or src.is_symlink() and not src.exists():
                continue
            dst = repository.work / relative
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
        _git("remote", "add", "origin", str(repository.git_dir), cwd=repository.work)
        repository.commit(message)
        return repository

    def commit(self, message: str, files: Mapping[str, str | None] | None = None, *, branch: str | None = None) -> str:
        """Write (or, for None, delete) `files` on `branch` of the work tree and commit; returns the sha."""
        if branch is not None:
            self.checkout(branch)
        for relative, content in (files or {}).items():
            path = self.work / relative
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        _git("add", "--all", cwd=self.work)
        _git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work, env=GIT_IDENTITY)
        return self.head()

    def checkout(self, branch: str, *, start: str | None = None) -> None:
        exists = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=self.work,  # noqa: S603,S607  # nosec
                                capture_output=True, check=False).returncode == 0  # fmt: skip
        if exists:
            _git("checkout", "--quiet", branch, cwd=self.work)
        else:
            _git("checkout", "--quiet", "-b", branch, *([start] if start else []), cwd=self.work)

    def head(self, ref: str = "HEAD") -> str:
        return _git("rev-parse", ref, cwd=self.work).strip()

    def push(self, branch: str) -> tuple[str, str]:
        """Push the branch to the stand-in for GitHub; returns (before, after) as the push event has them."""
        before = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=self.git_dir,  # noqa: S603,S607  # nosec
                                capture_output=True, text=True, check=False).stdout.strip() or ZERO_SHA  # fmt: skip
        _git("push", "--quiet", "--force", "origin", f"refs/heads/{branch}:refs/heads/{branch}", cwd=self.work)
        return before, self.head(f"refs/heads/{branch}")

    def commits_between(self, before: str, after: str) -> list[str]:
        span = after if before == ZERO_SHA else f"{before}..{after}"
        return _git("rev-list", "--reverse", span, cwd=self.git_dir).split()

    def update_pull_refs(self, number: int, head_sha: str, base_branch: str) -> str:
        """refs/pull/N/head and GitHub's test merge commit refs/pull/N/merge; returns the merge sha."""
        _git("update-ref", f"refs/pull/{number}/head", head_sha, cwd=self.git_dir)
        base_sha = _git("rev-parse", f"refs/heads/{base_branch}", cwd=self.git_dir).strip()
        tree = _git("merge-tree", "--write-tree", base_sha, head_sha, cwd=self.git_dir).split()[0]
        merge = _git("commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m",
                     f"Merge {head_sha} into {base_sha}", cwd=self.git_dir, env=GIT_IDENTITY).strip()  # fmt: skip
        _git("update-ref", f"refs/pull/{number}/merge", merge, cwd=self.git_dir)
        return merge


def _repository_object(repository: LocalRepository) -> dict[str, Any]:
    owner = repository.name.split("/")[0]
    return {
        "full_name": repository.name,
        "name": repository.name.split("/")[1],
        "owner": {"login": owner},
        "default_branch": repository.default_branch,
        "html_url": f"https://github.com/{repository.name}",
    }


def push_event(repository: LocalRepository, branch: str, before: str, after: str) -> tuple[str, dict[str, Any]]:
    commits = repository.commits_between(before, after)
    return "push", {
        "ref": f"refs/heads/{branch}",
        "before": before,
        "after": after,
        "created": before == ZERO_SHA,
        "deleted": False,
        "forced": False,
        "repository": _repository_object(repository),
        "commits": [{"id": c, "distinct": True} for c in commits],
        "head_commit": {"id": after},
        "pusher": {"name": "octocat"},
        "sender": {"login": "octocat"},
    }


def pull_request_event(repository: LocalRepository, action: str, pull: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    pull = copy.deepcopy(dict(pull))
    pull["head"]["repo"] = _repository_object(repository)
    pull["base"]["repo"] = _repository_object(repository)
    return "pull_request", {
        "action": action,
        "number": pull["number"],
        "pull_request": pull,
        "repository": _repository_object(repository),
        "sender": {"login": "octocat"},
    }


def schedule_event(repository: LocalRepository, cron: str) -> tuple[str, dict[str, Any]]:
    return "schedule", {"schedule": cron, "repository": _repository_object(repository)}


def dispatch_event(repository: LocalRepository, inputs: Mapping[str, str] | None = None, branch: str = "main") -> tuple[str, dict[str, Any]]:
    return "workflow_dispatch", {
        "ref": f"refs/heads/{branch}",
        "inputs": dict(inputs or {}),
        "repository": _repository_object(repository),
        "sender": {"login": "octocat"},
    }


# --- the runner ------------------------------------------------------------------------------


def image_path() -> str:
    """The runner image's PATH: the docker stand-in, the system's tools (git, node, jq, python3.11)."""
    return os.pathsep.join([str(ACTIONS_DIR / "bin"), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


@dataclass
class WorkflowRunner:
    root: Path
    """Runs, caches and runner homes live here (one per local repository)."""
    repository: LocalRepository
    github: GitHubStub
    secrets: Mapping[str, str]
    """Every secret value by name (repository and environments alike): the runner gives each job
    only those its environment and the repository hold (settings)."""
    variables: Mapping[str, str]
    """The repository's variables by name. Each environment's are the GitHub stand-in's (set
    through its API, as an operator sets them): a job reads its environment's in place of these,
    only the names the settings declare for that environment."""
    machine_env: Mapping[str, str] = field(default_factory=dict)
    """Where the local cloud answers (AWS_ENDPOINT_URL, CLOUDFLARE_API_BASE_URL, ...): what the
    runner machine's network would resolve, given to every job."""
    settings: repository_settings.Settings = field(default_factory=repository_settings.load)
    on_line: Callable[[str], None] | None = None
    keep_failed: bool = False
    """Keep a failed run's workspace, home and RUNNER_TEMP under its run directory, to look into."""

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def empty_cache(self) -> None:
        """A cold cache, as for a repository whose caches were all evicted."""
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def run(self, workflow: str, event_name: str, event: Mapping[str, Any], *, sha: str | None = None,
            workflow_text: str | None = None, timeout: float = DEFAULT_TIMEOUT, actor: str = "octocat") -> RunRecord:  # fmt: skip
        """Run `.github/workflows/<workflow>` for the event, as the commit under test holds it
        (`workflow_text` replaces it: a test's throwaway copy); returns the run's record."""
        ref, sha = self._ref_and_sha(event_name, event, sha)
        run_id = self.github.next_run_id()
        run_dir = self.root / "runs" / str(run_id)
        source = run_dir / "source"
        run_dir.mkdir(parents=True)
        _git("clone", "--quiet", "--shared", "--no-checkout", str(self.repository.git_dir), str(source), cwd=run_dir)
        _git("fetch", "--quiet", "origin", sha, cwd=source)
        _git("checkout", "--quiet", "--detach", sha, cwd=source)
        workflow_path = source / WORKFLOWS / workflow
        if workflow_text is not None:
            workflow_path.write_text(workflow_text)
        if not workflow_path.is_file():
            raise RunnerError(f"{WORKFLOWS}/{workflow} does not exist at {sha[:12]}")
        document = load_workflow(workflow_path)
        name = workflow_name(document, f"{WORKFLOWS}/{workflow}")
        check_ref = deployment_ref(event_name, event, ref)
        documents: dict[str, tuple[str, dict[str, Any]]] = {f"{WORKFLOWS}/{workflow}": (name, document)}
        for called in called_workflows(document).values():
            called_document = load_workflow(source / called)
            documents[called] = (workflow_name(called_document, called), called_document)
        refused: list[str] = []
        registration = RunRegistration(
            run_id=run_id, request_token=secrets_module.token_urlsafe(24), event_name=event_name, event=event, ref=ref,
            sha=sha, workflow=name, workflow_ref=f"{self.repository.name}/{WORKFLOWS}/{workflow}@{ref}", actor=actor,
        )  # fmt: skip
        environment_variables = self.github.variables_by_environment()
        for path, (doc_name, doc) in documents.items():
            prepared, refused_here = prepare_workflow(doc, self.settings, check_ref, environment_variables)
            refused += refused_here
            (source / path).write_text(_dump_workflow(prepared))
            for job_id, job in doc["jobs"].items():
                if isinstance(job, Mapping) and "uses" not in job:
                    registration.jobs[(doc_name, job_id)] = JobIdentity(
                        environment=job_environment(job), id_token=has_id_token(job, doc),
                        job_workflow_ref=f"{self.repository.name}/{path}@{ref}",
                    )  # fmt: skip
        self.github.register_run(registration)

        record = RunRecord(run_id=run_id, workflow=workflow, event_name=event_name, ref=ref, sha=sha, started=time.time(),
                           refused_jobs=refused, log_file=run_dir / "act.jsonl")  # fmt: skip
        masker = _Masker([*self.secrets.values(), registration.request_token, self.github.token])
        started_at = datetime.now(UTC)
        try:
            argv, env = self._act_command(run_dir, source, workflow, event_name, event, registration, [d for _, d in documents.values()])
            record.exit_code = self._act(argv, env, source, _RecordBuilder(record, masker, record.log_file), timeout)
        finally:
            record.ended = time.time()
            self.github.finish_run(run_id)
            self._report(record, name, event_name, event, started_at)
            if not (self.keep_failed and record.conclusion != "success"):
                for scratch in ("home", "act", "source"):  # a runner's disk does not outlive its job
                    shutil.rmtree(run_dir / scratch, ignore_errors=True)
        return record

    def _ref_and_sha(self, event_name: str, event: Mapping[str, Any], sha: str | None) -> tuple[str, str]:
        if event_name in ("pull_request", "pull_request_target"):
            number = int(event["number"])
            merge = _git("rev-parse", f"refs/pull/{number}/merge", cwd=self.repository.git_dir).strip()
            return f"refs/pull/{number}/merge", sha or merge
        if event_name == "push":
            return str(event["ref"]), sha or str(event["after"])
        ref = str(event.get("ref") or f"refs/heads/{self.repository.default_branch}")
        return ref, sha or _git("rev-parse", ref, cwd=self.repository.git_dir).strip()

    def _act_command(self, run_dir: Path, source: Path, workflow: str, event_name: str, event: Mapping[str, Any],
                     registration: RunRegistration, documents: list[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:  # fmt: skip
        act = BIN_DIR / "act"
        if not act.exists():
            raise RunnerError("bin/act is missing: python -m sandbox.engine build --only runner")
        event_file = run_dir / "event.json"
        event_file.write_text(json.dumps(event))
        secret_file, var_file, env_file = run_dir / "secrets.env", run_dir / "vars.env", run_dir / "empty.env"
        secret_file.write_text(_dotenv({**self.secrets, "GITHUB_TOKEN": self.github.token}))
        secret_file.chmod(0o600)
        var_file.write_text(_dotenv(self.variables))
        env_file.write_text("")
        argv = [
            str(act), event_name,
            "--directory", str(source),
            "--workflows", f"{WORKFLOWS}/{workflow}",
            "--no-recurse",
            "--eventpath", str(event_file),
            "--secret-file", str(secret_file),
            "--var-file", str(var_file),
            "--env-file", str(env_file),
            "--action-cache-path", str(run_dir / "act"),
            "--action-offline-mode",
            "--no-skip-checkout",
            "--no-cache-server",
            "--defaultbranch", self.repository.default_branch,
            "--actor", registration.actor,
            "--json",
        ]  # fmt: skip
        for platform in PLATFORMS:
            argv += ["--platform", f"{platform}=-self-hosted"]
        for owner, repo, ref in sorted(action_uses(documents)):
            argv += ["--local-repository", f"{owner}/{repo}@{ref}={standin_dir(owner, repo)}"]
        for key, value in (event.get("inputs") or {}).items():
            argv += ["--input", f"{key}={value}"]
        settings = {
            "GITHUB_REPOSITORY": self.repository.name,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_RUN_ID": str(registration.run_id),
            "GITHUB_RUN_NUMBER": str(registration.run_id),
            "GITHUB_WORKFLOW_REF": registration.workflow_ref,
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.github.oidc_token_url}?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": registration.request_token,
        }
        for key, value in settings.items():
            argv += ["--env", f"{key}={value}"]
        home = run_dir / "home"
        home.mkdir()
        env = {
            "HOME": str(home),
            "PATH": image_path(),
            "LANG": "C.UTF-8",
            "USER": os.environ.get("USER", "runner"),
            "RUNNER_OS": "Linux",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # act asks https://api.nektosact.com/notices on every run unless this is 1 (v0.2.89,
            # cmd/notices.go getVersionNotices): a run needs nothing beyond the local cloud.
            "ACT_DISABLE_VERSION_CHECK": "1",
            "WEBSTACK_RUNNER_REPO": str(REPO),
            "WEBSTACK_RUNNER_PYTHON": str(RUNNER_PYTHON),
            "WEBSTACK_RUNNER_CACHE": str(self.cache_dir),
            "WEBSTACK_RUNNER_ARTIFACTS": str(run_dir / "artifacts"),
            "WEBSTACK_GITHUB_GIT": str(self.repository.git_dir),
            "WEBSTACK_ENGINE_BIN": str(BIN_DIR),
            "WEBSTACK_STANDIN_PLUGINS": str(STANDIN_PLUGINS),
            **self.machine_env,
        }
        try:  # pip and npm install offline: the wheelhouse and npm cache .ci/setup built (sandbox/runner_packages.py)
            env.update(runner_packages.job_environment(home))
        except runner_packages.RunnerPackagesError as exc:
            raise RunnerError(str(exc)) from exc
        return argv, env

    def _act(self, argv: list[str], env: dict[str, str], cwd: Path, builder: _RecordBuilder, timeout: float) -> int:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,  # noqa: S603  # nosec
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        timer = threading.Timer(timeout, lambda: kill_tree(proc.pid))
        timer.start()
        try:
            assert proc.stdout is not None  # nosec B101 - Popen with PIPE
            for line in proc.stdout:
                builder.feed(line)
                if self.on_line is not None:
                    with contextlib.suppress(Exception):
                        self.on_line(builder.masker(line.rstrip("\n")))
            return proc.wait()
        except BaseException:
            kill_tree(proc.pid)
            raise
        finally:
            timer.cancel()
            builder.close()

    def _report(self, record: RunRecord, name: str, event_name: str, event: Mapping[str, Any], started: datetime) -> None:
        """The run as GitHub's API shows it (the audit report reads these) and its record for the tests."""
        pull = event.get("pull_request") or {}
        branch = (pull.get("head") or {}).get("ref") if pull else str(event.get("ref", "")).removeprefix("refs/heads/")
        jobs = []
        for number, job in enumerate(record.jobs.values(), 1):
            steps = [{"name": s.name, "number": i, "status": "completed", "conclusion": s.result}
                     for i, s in enumerate((s for s in job.steps if s.stage == "Main"), 1)]  # fmt: skip
            jobs.append({"id": record.run_id * 100 + number, "run_id": record.run_id, "name": job.name, "status": "completed",
                         "conclusion": job.result or "skipped", "steps": steps})  # fmt: skip
        run = {
            "id": record.run_id,
            "name": name,
            "path": f"{WORKFLOWS}/{record.workflow}",
            "event": event_name,
            "head_branch": branch or None,
            "head_sha": (pull.get("head") or {}).get("sha") if pull else record.sha,
            "status": "completed",
            "conclusion": record.conclusion,
            "run_attempt": 1,
            "created_at": iso(started),
            "run_started_at": iso(started),
            "updated_at": iso(datetime.now(UTC)),
            "html_url": f"https://github.com/{self.repository.name}/actions/runs/{record.run_id}",
            "actor": {"login": "octocat"},
            "triggering_actor": {"login": "octocat"},
            "pull_requests": [{"number": pull["number"]}] if pull else [],
        }
        self.github.record_run(run, jobs, record)


def _dotenv(values: Mapping[str, str]) -> str:
    lines = []
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise RunnerError(f"{key}: a multi-line value cannot be given to act")
        lines.append(f"{key}={json.dumps(value)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a person's entry point
    print("sandbox.workflow_runner is a library: the scenarios run it (tests/test_workflow_runs.py, bench/workflow_runs.py)",
          file=sys.stderr)  # fmt: skip
    return 2


if __name__ == "__main__":
    sys.exit(main())
