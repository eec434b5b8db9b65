"""The stack files as plain files: what Pulumi.yaml declares and what a stack's config file sets,
read without the Pulumi SDK.

For everything that needs a stack's setting before `pulumi` runs or without it (the workflows'
helpers, the offline plan, the sandbox, the policy pack's config, the docs): components/settings.py
builds the program's validated `Settings` from Pulumi's config on top of this. A `preview-pr-<N>`
stack runs on the template's file (`--config-file Pulumi.preview.yaml`, `stack_config_file`).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.names import PR_STACK, PREVIEW_STACK

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"
# libyaml's parser where PyYAML was built with it: the pure-Python one takes about 0.2 s of CPU for
# Pulumi.yaml, and the workflows' helpers and the tests read the stack files many times over.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """The document of a YAML file, parsed once while the file is unchanged (a copy each call, so a
    caller may change what it got)."""
    stat = path.stat()
    return copy.deepcopy(_parsed(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _parsed(path: str, mtime_ns: int, size: int) -> Any:
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER)  # nosec B506 - a safe loader


# Secrets never live in stack files; each comes from `pulumi config set --secret` or, failing
# that, from the CI job's environment (which is also where the deploy steps read them).
# `databaseUrl` is the direct connection (migrations, schema, deploy records); `runtimeDatabaseUrl`
# is what the API function connects with, usually the transaction pooler.
SECRET_ENVIRONMENT = {"databaseUrl": "DATABASE_URL", "runtimeDatabaseUrl": "RUNTIME_DATABASE_URL"}
# The function's own secrets (a JSON object); only from `pulumi config set --secret`, never the environment.
SECRET_ENVIRONMENT_KEY = "apiSecretEnvironment"
SECRET_KEYS = frozenset({*SECRET_ENVIRONMENT, SECRET_ENVIRONMENT_KEY})


@dataclass(frozen=True, kw_only=True)
class ConfigKey:
    name: str
    type: str
    default: Any = None
    secret: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.secret


def declared_keys(project_file: Path = PROJECT_FILE) -> dict[str, ConfigKey]:
    """The config keys Pulumi.yaml declares for this project, by their short name."""
    document = read_yaml(project_file)
    project = document["name"]
    keys = {}
    for full_name, declaration in (document.get("config") or {}).items():
        namespace, _, short = full_name.partition(":")
        if namespace != project:
            continue
        keys[short] = ConfigKey(
            name=short,
            type=declaration["type"],
            default=declaration.get("default"),
            # Not `secret: true` in Pulumi.yaml: the CLI demands a value for such a key, so one that
            # may come from the CI environment alone could not be declared (see Pulumi.yaml).
            secret=short in SECRET_KEYS,
        )
    return keys


def stack_config_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    """The config file `pulumi` reads for `stack`: `Pulumi.<stack>.yaml`, and for a `preview-pr-<N>`
    stack the template's, which the workflows, the sandbox and the README pass as `--config-file`.

    Pulumi's own precedence then holds everywhere: a value in that file beats the default
    `Pulumi.yaml` declares. (Reading the template inside the program, as before, let every default
    override it: `apiFunctionCount: 10` became 1 on every PR stack.)
    """
    return root / f"Pulumi.{PREVIEW_STACK if PR_STACK.fullmatch(stack) else stack}.yaml"


def stack_file_values(stack: str, project: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Plain (non-secure) values of the config file `stack` runs on (a PR stack: the template's)."""
    return config_file_values(stack_config_file(stack, root), project)


def config_file_values(path: Path, project: str) -> dict[str, Any]:
    """Plain (non-secure) values of a stack config file (`--config-file`) in the project's namespace."""
    if not path.exists():
        return {}
    config = (read_yaml(path) or {}).get("config") or {}
    prefix = f"{project}:"
    return {
        key[len(prefix):]: value
        for key, value in config.items()
        if key.startswith(prefix) and not (isinstance(value, dict) and "secure" in value)
    }


def stack_setting(stack: str, key: str, root: Path = PROJECT_ROOT) -> Any:
    """A plain setting of `stack` as the program reads it, from the files alone (no engine).

    For the workflows and tools that need one before `pulumi` runs (the app directory for caches):
    the stack's file (a PR stack: Pulumi.preview.yaml), else the default Pulumi.yaml declares.
    """
    document = read_yaml(root / "Pulumi.yaml")
    project = document["name"]
    values = stack_file_values(stack, project, root)
    if key in values:
        return values[key]
    return declared_keys(root / "Pulumi.yaml")[key].default
