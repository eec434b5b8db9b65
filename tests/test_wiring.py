"""The real __main__.py per stack: the phase order on the recorded edges, determinism, secrets."""

import copy
import json
import subprocess
import sys

import pytest

from core.phases import PHASES
from tools.plan import phase_order_violations
from components.settings import PROJECT_ROOT
from tests.conftest import SECRET_SENTINEL, record

STACKS = ["prod", "preview", "preview-pr-7"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_phase_order_holds(recorded, stack):
    assert phase_order_violations(recorded(stack)) == []


def ancestors_names(recording, name):
    return {recording.resources[urn].name for urn in recording.ancestors(recording.by_name(name).urn)}


@pytest.mark.parametrize("stack", STACKS)
def test_the_order_rules_the_issue_names(recorded, stack):
    recording = recorded(stack)
    assert {"app-install", "database-schema", "site-domain-record", "api-role-role"} <= ancestors_names(
        recording, "database-migrate"
    )
    assert "database-migrate" in ancestors_names(recording, "api-function")
    assert "database-migrate" not in ancestors_names(recording, "api-build")  # builds start early
    assert "api-url" in ancestors_names(recording, "site-deploy")
    for check in ("checks-site-health", "checks-api-health", "checks-dns"):
        assert {"site-deploy", "api-function", "database-migrate"} <= ancestors_names(recording, check)
    if stack == "prod":
        assert "database-migrate" in ancestors_names(recording, "api-alias")
        assert "api-verify-alias" in ancestors_names(recording, "site-deploy")


def without_path(recording, name, dependency_name):
    """`name` no longer waits for `dependency_name` on any path: its direct edge goes, and so does
    every edge to a resource that waits for it (a second path would hide the mutation)."""
    broken = copy.deepcopy(recording)
    resource = broken.by_name(name)
    dropped = broken.by_name(dependency_name).urn
    assert dropped in broken.ancestors(resource.urn), f"{name} does not wait for {dependency_name}"
    resource.dependencies -= {urn for urn in resource.dependencies if urn == dropped or dropped in broken.ancestors(urn)}
    assert dropped not in broken.ancestors(resource.urn)
    return broken


@pytest.mark.parametrize(
    ("name", "dependency", "expected"),
    [
        ("api-function", "database-migrate", "backend: api-function does not wait for"),
        ("database-migrate", "database-schema", "database: database-migrate does not wait for"),
        ("site-deploy", "api-pre-traffic-check", "frontend: site-deploy does not wait for"),
        ("checks-api-health", "site-deploy", "checks: checks-api-health does not wait for"),
    ],
)
def test_the_order_check_fails_when_an_edge_is_removed(recorded, name, dependency, expected):
    broken = without_path(recorded("preview-pr-7"), name, dependency)
    violations = phase_order_violations(broken)
    assert any(v.startswith(expected) for v in violations), violations


def test_the_order_check_fails_when_a_build_waits_for_the_database(recorded):
    broken = copy.deepcopy(recorded("prod"))
    broken.by_name("api-build").dependencies.add(broken.by_name("database-migrate").urn)
    assert any("api-build is a build but waits for live changes" in v for v in phase_order_violations(broken))


@pytest.mark.parametrize("stack", STACKS)
def test_two_evaluations_of_the_same_tree_declare_identical_inputs(recorded, stack):
    first, second = recorded(stack), record(stack)
    assert first.resources.keys() == second.resources.keys()
    for urn, resource in first.resources.items():
        assert resource.inputs == second.resources[urn].inputs, urn
        assert resource.dependencies == second.resources[urn].dependencies, urn


@pytest.mark.parametrize("stack", STACKS)
def test_the_secret_sentinel_appears_only_in_secret_inputs(recorded, stack):
    recording = recorded(stack)
    carriers = []
    for resource in recording.resources.values():
        for key, value in resource.inputs.items():
            if SECRET_SENTINEL in json.dumps(value, default=str):
                carriers.append(resource.name)
                assert key in resource.secret_inputs, f"{resource.name}.{key} carries the secret in plain text"
    assert carriers == ["api-function"]  # it does reach the one place that needs it


def test_the_sentinel_check_sees_a_plain_secret():
    from tools.offline import _secret_paths

    assert _secret_paths({"environment": {"A": "x"}}) == set()
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}
    assert _secret_paths({"environment": {"variables": {"DATABASE_URL": secret}}}) == {"environment"}


def test_a_database_url_from_the_environment_is_made_secret(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", SECRET_SENTINEL)
    recording = record("preview-pr-3", database_url=None)
    assert recording.by_name("api-function").secret_inputs == {"environment"}


def test_bad_settings_stop_before_any_resource():
    from tools.offline import Recording, config_for, run_program
    from components.settings import SettingsError

    recording = Recording(stack="staging")
    with pytest.raises(SettingsError):
        run_program("staging", config_for("staging", {}), recording=recording)
    assert recording.resources == {}  # not even the provider: nothing was declared
    # The same recorder does see resources when the settings are good.
    good = record("preview-pr-3")
    assert good.resources


def run_plan(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.slow  # runs the offline plan in a subprocess (about 15 s each)
@pytest.mark.parametrize("stack", STACKS)
def test_the_offline_plan_prints_all_phases(stack, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = run_plan("--stack", stack, env=env)
    assert result.returncode == 0, result.stderr
    for index, phase in enumerate(PHASES, 1):
        assert f"{index}. {phase}" in result.stdout
    assert "```mermaid\ngraph TD" in result.stdout
    assert "Phase order: holds" in result.stdout
    assert "planning with a placeholder for secret `databaseUrl`" in result.stdout


@pytest.mark.slow  # runs the offline plan in a subprocess (about 15 s each)
def test_the_offline_plan_lists_every_settings_problem(tmp_path):
    result = run_plan("--stack", "preview-pr-seven", env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "PR number 'seven' is not a positive whole number" in result.stderr
    assert result.stdout == ""
