"""The API's database connections as the program declares them: the runtime URL (not the direct
one) in the function's environment, its pool size, and its reserved concurrency per stack."""

import json

import pytest

from components.settings import declared_keys, stack_setting
from tests.conftest import FIXTURE_APP
from tools.offline import committed_values, config_for, run_program

DIRECT = "postgres://direct-user:D1RECT-pw-0b2c@db.example.com:5432/app"
POOLED = "postgres://pooled-user:P00LED-pw-9e4d@pooler.example.com:6543/app"


def function_of(stack, *, runtime_url=POOLED, **overrides):
    config = config_for(stack, {**committed_values(stack), "appDir": FIXTURE_APP, **overrides})
    config["webstack:databaseUrl"] = DIRECT
    secret_keys = ["webstack:databaseUrl"]
    if runtime_url is not None:
        config["webstack:runtimeDatabaseUrl"] = runtime_url
        secret_keys.append("webstack:runtimeDatabaseUrl")
    recording = run_program(stack, config, secret_keys=tuple(secret_keys))
    return recording, recording.by_name("api-function")


def carriers(recording, text):
    return sorted(r.name for r in recording.resources.values() if text in json.dumps(r.inputs, default=str))


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
def test_the_function_connects_with_the_runtime_url_and_nothing_holds_the_direct_one(stack):
    recording, function = function_of(stack)
    assert carriers(recording, POOLED) == ["api-function"]
    assert function.secret_inputs == {"environment"}
    # The direct URL is the steps' (from the job's environment): no resource input carries it.
    assert carriers(recording, DIRECT) == []


def test_without_a_runtime_url_the_function_gets_the_direct_one_still_secret():
    recording, function = function_of("preview-pr-7", runtime_url=None)
    assert carriers(recording, DIRECT) == ["api-function"]
    assert function.secret_inputs == {"environment"}


@pytest.mark.parametrize("stack", ["prod", "preview-pr-7"])
def test_reserved_concurrency_and_pool_size_come_from_the_stacks_settings(stack):
    _, function = function_of(stack)
    file_stack = "preview" if stack != "prod" else "prod"
    assert function.inputs["reservedConcurrentExecutions"] == stack_setting(file_stack, "apiReservedConcurrency")
    assert function.inputs["environment"]["variables"]["DB_POOL_SIZE"] == str(stack_setting(file_stack, "apiPoolSize"))


def test_previews_run_on_the_small_defaults():
    _, function = function_of("preview-pr-7")
    default = declared_keys()["apiReservedConcurrency"].default
    assert default <= 2
    assert function.inputs["reservedConcurrentExecutions"] == default
    assert function.inputs["environment"]["variables"]["DB_POOL_SIZE"] == str(declared_keys()["apiPoolSize"].default)


def test_an_over_budget_stack_declares_nothing():
    from components.settings import SettingsError
    from tools.offline import Recording

    recording = Recording(stack="prod")
    config = config_for("prod", {**committed_values("prod"), "appDir": FIXTURE_APP, "apiReservedConcurrency": 500})
    config["webstack:databaseUrl"] = DIRECT
    with pytest.raises(SettingsError, match="connection budget exceeded: 1 functions"):
        run_program("prod", config, secret_keys=("webstack:databaseUrl",), recording=recording)
    assert recording.resources == {}


@pytest.mark.parametrize("key", ["databaseUrl", "runtimeDatabaseUrl"])
def test_a_database_url_in_plain_config_is_refused_before_anything_is_declared(key: str):
    # Pulumi.yaml cannot mark these keys `secret: true` (their value may come from the environment
    # alone), so the program itself refuses one set without --secret.
    from components.settings import SettingsError
    from tools.offline import Recording

    recording = Recording(stack="prod")
    config = config_for("prod", {**committed_values("prod"), "appDir": FIXTURE_APP})
    config["webstack:databaseUrl"] = DIRECT
    config[f"webstack:{key}"] = DIRECT
    secret_keys = tuple(k for k in ("webstack:databaseUrl",) if k != f"webstack:{key}")
    with pytest.raises(SettingsError, match=f"`{key}` is in the stack's config as plain text: set it with `pulumi config set --secret"):
        run_program("prod", config, secret_keys=secret_keys, recording=recording)
    assert recording.resources == {}
