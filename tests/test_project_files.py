"""Pulumi.yaml and the stack files: valid against Pulumi's schema, every key declared, no secrets."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.settings import PROJECT_FILE, PROJECT_ROOT, declared_keys

# Pulumi's own JSON schema for Pulumi.yaml, vendored: a clone of this repository must test alone.
SCHEMA = PROJECT_ROOT / "tests" / "fixtures" / "schemas" / "pulumi-project.schema.json"
STACK_FILES = sorted(PROJECT_ROOT.glob("Pulumi.*.yaml"))


def test_project_file_validates_against_pulumis_schema():
    assert SCHEMA.exists(), f"Pulumi's project schema is expected at {SCHEMA}"
    schema = json.loads(SCHEMA.read_text())
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())
    jsonschema.validate(project, schema)
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_schema_check_rejects_a_broken_project_file():
    schema = json.loads(SCHEMA.read_text())
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())
    project["config"]["webstack:domain"] = {"type": "hostname"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(project, schema)


def test_every_secret_key_may_come_from_the_environment_alone():
    # The CLI refuses a stack with no value for a key declared without a default, and a plain
    # default for a `secret: true` key, before the program runs; a secret the CI job passes only as
    # an environment variable must be declared with `default: ""` and without `secret: true`.
    declarations = yaml.safe_load(PROJECT_FILE.read_text())["config"]
    secrets = [name for name, key in declared_keys().items() if key.secret]
    assert secrets
    for name in secrets:
        declaration = declarations[f"webstack:{name}"]
        assert declaration.get("default") == "" and not declaration.get("secret"), (
            f"{name}: declare `default: \"\"` without `secret: true` (its value may come from the CI environment)"
        )


def test_every_declared_key_has_type_and_description():
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())
    for key, declaration in project["config"].items():
        assert declaration.get("type"), key
        assert declaration.get("description"), key


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=lambda p: p.name)
def test_stack_files_use_only_declared_keys_and_hold_no_secret(stack_file: Path):
    keys = declared_keys()
    config = yaml.safe_load(stack_file.read_text())["config"]
    for full_key, value in config.items():
        namespace, _, key = full_key.partition(":")
        assert namespace == "webstack" and key in keys, f"{stack_file.name}: undeclared key {full_key}"
        assert not keys[key].secret, f"{stack_file.name}: secret {key} must not be in a stack file"
        assert not isinstance(value, dict), f"{stack_file.name}: {full_key} is structured or `secure:`"


def test_stack_files_exist_for_prod_and_the_preview_template_only():
    assert [p.name for p in STACK_FILES] == ["Pulumi.preview.yaml", "Pulumi.prod.yaml"]
