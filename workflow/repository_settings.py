"""The repository's GitHub settings (.github/repository-settings.yml): its variables, secrets and
environments with their deployment branch rules. One place for them: the local workflow runner
enforces them (sandbox/workflow_runner.py), the tests check the workflows against them, and an
operator applies them.

`load()` returns `Settings`; `Environment.allows(ref, head_ref)` is GitHub's deployment branch
check: the ref a job runs for (a pull_request job: the PR's head branch) must match one of the
environment's branch patterns, with `*` matching anything but `/` (GitHub's fnmatch with
FNM_PATHNAME; `**` crosses `/`). A ref that is refused gets GitHub's message from `refusal()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SETTINGS_FILE = Path(__file__).resolve().parents[1] / ".github" / "repository-settings.yml"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SettingsError(ValueError):
    """The settings file is malformed; the message names the key."""


def _pattern(glob: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*|\?)", glob)
    regex = "".join({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part)) for part in parts)
    return re.compile(regex)


@dataclass(frozen=True)
class Environment:
    name: str
    branches: tuple[str, ...] | None
    """Branch name patterns that may deploy to it; None: any branch."""
    secrets: tuple[str, ...]
    variables: tuple[str, ...]

    def allows(self, ref: str) -> bool:
        """Whether a job running for `ref` (refs/heads/X, refs/tags/X, or a branch name) may use it."""
        if self.branches is None:
            return True
        if not ref.startswith("refs/heads/") and ref.startswith("refs/"):
            return False  # tags and pull refs match no branch policy
        branch = ref.removeprefix("refs/heads/")
        return any(_pattern(p).fullmatch(branch) for p in self.branches)

    def refusal(self, ref: str) -> str:
        kind, name = ("Tag", ref.removeprefix("refs/tags/")) if ref.startswith("refs/tags/") else ("Branch", ref.removeprefix("refs/heads/"))
        return f'{kind} "{name}" is not allowed to deploy to {self.name} due to environment protection rules.'


@dataclass(frozen=True)
class Settings:
    variables: tuple[str, ...]
    secrets: tuple[str, ...]
    environments: dict[str, Environment]


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and NAME.fullmatch(v) for v in value):
        raise SettingsError(f"{where} must be a list of names (letters, digits, _), got {value!r}")
    return tuple(value)


def parse(document: Any) -> Settings:
    if not isinstance(document, dict):
        raise SettingsError("the settings file must be a mapping")
    environments: dict[str, Environment] = {}
    for name, spec in (document.get("environments") or {}).items():
        if not isinstance(spec, dict):
            raise SettingsError(f"environments.{name} must be a mapping")
        branches = spec.get("deployment_branches", "all")
        if branches != "all" and not (isinstance(branches, list) and branches and all(isinstance(b, str) and b for b in branches)):
            raise SettingsError(f"environments.{name}.deployment_branches must be `all` or a list of branch patterns")
        environments[str(name)] = Environment(
            name=str(name),
            branches=None if branches == "all" else tuple(branches),
            secrets=_names(spec.get("secrets"), f"environments.{name}.secrets"),
            variables=_names(spec.get("variables"), f"environments.{name}.variables"),
        )
    return Settings(
        variables=_names(document.get("variables"), "variables"),
        secrets=_names(document.get("secrets"), "secrets"),
        environments=environments,
    )


def load(path: Path = SETTINGS_FILE) -> Settings:
    try:
        return parse(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} is not YAML: {exc}") from None
