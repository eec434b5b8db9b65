"""Shared fixtures: the program evaluated under the one recording mock (tools.offline).

`record(stack, **overrides)` runs the real `__main__.py` for a stack with its committed config
(a PR stack: the template, Pulumi.preview.yaml, its `--config-file`) plus overrides, against the small fixture app,
and returns every registered resource with its parent, inputs, secret inputs and dependency edges.
"""

from __future__ import annotations

from typing import Any

import pytest

from tools.offline import Recording, committed_values, config_for, run_program

# Loopback stand-ins and the steps' environment, for every test module.
pytest_plugins = ["tests.support.http_stub", "tests.support.steps_env"]

FIXTURE_APP = "tests/fixtures/app"
# A value no resource may carry except as a secret.
SECRET_SENTINEL = "postgres://sentinel-user:S3NTINEL-5ecret-7f3a@db.example.com:5432/app"


def record(stack: str, *, database_url: str | None = SECRET_SENTINEL, **overrides: Any) -> Recording:
    values = {**committed_values(stack), "appDir": FIXTURE_APP, **overrides}
    config = config_for(stack, values)
    secret_keys: tuple[str, ...] = ()
    if database_url is not None:
        config["webstack:databaseUrl"] = database_url
        secret_keys = ("webstack:databaseUrl",)
    return run_program(stack, config, secret_keys=secret_keys)


@pytest.fixture(scope="session")
def recorded():
    """The three stacks the tests look at, each evaluated once per session."""
    cache: dict[str, Recording] = {}

    def get(stack: str) -> Recording:
        if stack not in cache:
            cache[stack] = record(stack)
        return cache[stack]

    return get
