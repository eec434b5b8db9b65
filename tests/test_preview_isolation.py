"""What a PR stack deploys stays out of prod's way where the program decides it (mocks level).

The credentials a PR stack runs with are the workflows' business (tests/test_workflows.py: PREVIEW_*
secrets, the `preview` environment); here: with those, the program never aims a preview at what
prod serves or reads.
"""

from __future__ import annotations

import pytest

from tests.conftest import record

PREVIEW_DSN = "postgres://webstack_preview_ci:preview-pass-6d1f@db.example.com:5432/app"


def env(recording, name):
    return recording.by_name(name).inputs["environment"]


def test_prod_serves_the_production_branch_main(recorded):
    prod = recorded("prod")
    assert prod.by_name("pages-project").inputs["productionBranch"] == "main"
    assert env(prod, "site-deploy")["PAGES_BRANCH"] == "main"
    assert prod.by_name("site-domain-record").inputs["content"] == "webstack-site.pages.dev"


@pytest.mark.parametrize("stack", ["preview-pr-7", "preview"])
def test_a_preview_deploys_a_preview_branch_never_the_production_one(recorded, stack):
    preview, prod = recorded(stack), recorded("prod")
    branch = env(preview, "site-deploy")["PAGES_BRANCH"]
    assert branch != prod.by_name("pages-project").inputs["productionBranch"]
    # Its host points at its branch alias, not at the production deployment prod's host serves.
    record = preview.by_name("site-domain-record").inputs
    assert record["content"] == f"{branch}.webstack-site.pages.dev"
    assert record["name"] != prod.by_name("site-domain-record").inputs["name"]
    assert "pages-project" not in preview.names()  # nor may it change the project's settings


def test_the_preview_function_gets_the_jobs_database_url_as_a_secret(monkeypatch):
    # The preview workflow sets DATABASE_URL from PREVIEW_DATABASE_URL: that is what the function gets.
    monkeypatch.setenv("DATABASE_URL", PREVIEW_DSN)
    preview = record("preview-pr-7", database_url=None)
    function = preview.by_name("api-function")
    assert function.inputs["environment"]["variables"]["DATABASE_URL"] == PREVIEW_DSN
    assert "environment" in function.secret_inputs
    assert function.inputs["environment"]["variables"]["DB_SCHEMA"] == "app_preview_pr_7"
