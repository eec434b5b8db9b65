"""Stack settings: names derived per stack, every problem reported at once, before any resource."""

import pytest

from core import aws_limits
from components.settings import SettingsError, declared_keys, parse_settings, stack_file_values

DATABASE_URL = "postgres://app:pw@db.example.com:5432/app"


POOLER_URL = "postgres://app:pw@pooler.example.com:6543/app"


def settings_for(stack, *, base="preview", database_url=DATABASE_URL, runtime_url=POOLER_URL, **overrides):
    values = {**stack_file_values(base, "webstack"), "appDir": "tests/fixtures/app", **overrides}
    return parse_settings(
        project="webstack",
        stack=stack,
        values=values,
        secrets={"databaseUrl": database_url, "runtimeDatabaseUrl": runtime_url},
        keys=declared_keys(),
    )


def problems_of(stack, **kwargs):
    with pytest.raises(SettingsError) as caught:
        settings_for(stack, **kwargs)
    return caught.value.problems


def test_prod_names():
    settings = settings_for("prod", base="prod")
    assert settings.kind == "prod"
    assert settings.db_schema == "app"
    assert settings.function_name == "webstack-api-prod"
    assert settings.pages_branch == "main"
    assert settings.site_url == "https://app.example.com/"
    assert settings.pages_target == "webstack-site.pages.dev"
    assert settings.github_subject == "repo:org/repo"


def test_a_pr_stack_derives_every_name_from_its_number():
    settings = settings_for("preview-pr-7")
    assert (settings.kind, settings.pr_number) == ("pr", 7)
    assert settings.db_schema == "app_preview_pr_7"
    assert settings.function_name == "webstack-api-preview-pr-7"
    assert settings.pages_branch == "pr-7"
    assert settings.site_host == "pr-7.app.example.com"
    assert settings.pages_target == "pr-7.webstack-site.pages.dev"


def test_two_pr_stacks_share_no_name():
    first, second = settings_for("preview-pr-7"), settings_for("preview-pr-8")
    names = lambda s: {s.db_schema, s.function_name, s.pages_branch, s.site_host, s.pages_target}  # noqa: E731
    assert names(first).isdisjoint(names(second))


def test_the_preview_template_keeps_its_own_names():
    settings = settings_for("preview")
    assert (settings.db_schema, settings.pages_branch) == ("app_preview", "preview")


@pytest.mark.parametrize("stack", ["production", "dev", "preview-7", "pr-7", "preview-pr-", ""])
def test_unknown_stack_names_are_refused(stack):
    [problem] = problems_of(stack)
    assert "is not one of `prod`, `preview` or `preview-pr-<N>`" in problem or "PR number" in problem


@pytest.mark.parametrize("number", ["abc", "07", "-1", "1.5", "0"])
def test_non_numeric_pr_numbers_are_refused(number):
    [problem] = problems_of(f"preview-pr-{number}")
    assert "is not a positive whole number" in problem


@pytest.mark.parametrize("schema", ["App", "app-preview", "1app", "app;drop", "a" * 64, "app\n"])
def test_unsafe_schema_names_are_refused(schema):
    problems = problems_of("preview", dbSchema=schema)
    assert any("not a plain PostgreSQL identifier" in p for p in problems)


def test_a_long_base_schema_is_refused_once_the_pr_suffix_is_added():
    base = "a" * 58  # fine alone, 64 characters with `_pr_77`
    settings_for("preview", dbSchema=base)
    assert any("plain PostgreSQL identifier" in p for p in problems_of("preview-pr-77", dbSchema=base))


def test_every_problem_is_listed_at_once():
    values = {"dbSchema": "Bad-Schema", "awsAccountId": "12", "domain": None, "appDir": "no/such/dir"}
    with pytest.raises(SettingsError) as caught:
        parse_settings(
            project="webstack",
            stack="preview-pr-x",
            values={k: v for k, v in values.items() if v is not None},
            secrets={"databaseUrl": None},
            keys=declared_keys(),
        )
    message = str(caught.value)
    for expected in (
        "PR number 'x'",
        "missing `domain`",
        "missing `pagesProject`",
        "`awsAccountId` '12'",
        "no/such/dir",
        "missing secret `databaseUrl`",
    ):
        assert expected in message
    assert len(caught.value.problems) >= 6


def test_the_transaction_pooler_is_refused():
    problems = problems_of("prod", base="prod", database_url="postgres://u:p@pooler.supabase.com:6543/postgres")
    assert any("6543" in p and "5432" in p for p in problems)


def test_only_prod_can_pin_a_version():
    assert settings_for("prod", base="prod", pinnedVersion="3").pinned_version == "3"
    assert any("only prod can pin" in p for p in problems_of("preview-pr-7", pinnedVersion="3"))
    assert any("only prod can pin" in p for p in problems_of("prod", base="prod", pinnedVersion="latest"))


def test_the_canary_is_off_by_default_and_prod_only():
    default = settings_for("prod", base="prod")
    assert (default.canary_percent, default.canary_seconds) == (0, 600)
    assert settings_for("prod", base="prod", canaryPercent=10, canarySeconds=30).canary_percent == 10
    assert any("only prod runs a canary" in p for p in problems_of("preview-pr-7", canaryPercent=10))
    assert any("`canaryPercent` must be from 0 (off) to 99" in p for p in problems_of("prod", base="prod", canaryPercent=100))
    assert any("`canarySeconds` must be at least 1" in p for p in problems_of("prod", base="prod", canarySeconds=0))


def test_integer_and_array_config_arrive_as_strings_from_the_cli():
    settings = settings_for("prod", base="prod", lambdaMemoryMb="1024", dnsResolvers='["127.0.0.1:5353"]')
    assert settings.lambda_memory_mb == 1024
    assert settings.dns_resolvers == ("127.0.0.1:5353",)
    assert any("must be a whole number" in p for p in problems_of("prod", base="prod", lambdaMemoryMb="lots"))


def test_a_wildcard_subject_prefix_is_refused():
    assert any("no `*`" in p for p in problems_of("prod", base="prod", githubSubjectPrefix="repo:org/*"))


@pytest.mark.parametrize(
    "url",
    [
        "host=pooler.supabase.com port=6543 dbname=postgres user=u password=p",  # keyword form
        "postgres://u:p@a.example.com:5432,b.example.com:6543/postgres",  # a multi-host list
    ],
)
def test_the_transaction_pooler_is_refused_in_every_form_libpq_reads(url):
    # One parser (steps.database) for the settings and the migration step.
    assert any("6543" in p for p in problems_of("prod", base="prod", database_url=url))


def test_a_stack_name_with_a_trailing_newline_is_refused():
    [problem] = problems_of("preview-pr-7\n")
    assert "PR number" in problem or "is not one of" in problem


@pytest.mark.parametrize(
    ("key", "url", "ok"),
    [
        ("jwksUrl", "http://127.0.0.1:8123/.well-known/jwks.json", True),
        ("jwksUrl", "http://auth.example.com/.well-known/jwks.json", False),  # plain http off this machine
        ("jwtIssuer", "http://localhost:8123/", True),
        ("siteUrl", "http://127.0.0.1:8124/", True),
        ("siteUrl", "http://127.0.0.1:8124", False),  # an origin plus '/', as the program derives it
        ("siteUrl", "ftp://127.0.0.1/", False),
        ("siteUrl", "http://[::1/", False),
    ],
)
def test_plain_http_is_accepted_only_on_loopback(key, url, ok):
    try:
        settings_for("preview", **{key: url})
        problems = []
    except SettingsError as error:
        problems = error.problems
    assert (problems == []) is ok, problems


def test_site_url_overrides_where_the_site_is_checked_and_admitted():
    settings = settings_for("preview-pr-3", siteUrl="http://127.0.0.1:8124/")
    assert settings.site_url == "http://127.0.0.1:8124/"
    assert settings.site_host == "pr-3.app.example.com"  # the DNS record is still the real host's
    assert settings_for("preview-pr-3").site_url == "https://pr-3.app.example.com/"


def secret_value(output):
    """The plain value of a settings Output (the tests run outside an engine)."""
    import asyncio

    return asyncio.get_event_loop().run_until_complete(output.future())


def test_the_runtime_url_may_be_the_transaction_pooler_and_stays_apart_from_the_direct_one():
    settings = settings_for("prod", base="prod")
    assert settings.warnings == ()
    assert secret_value(settings.runtime_database_url) == POOLER_URL
    assert secret_value(settings.database_url) == DATABASE_URL
    assert settings.runtime_database_url.is_secret


@pytest.mark.parametrize("runtime_url", [None, ""])
def test_without_a_runtime_url_the_api_uses_the_direct_one_with_a_warning(runtime_url):
    settings = settings_for("preview-pr-3", runtime_url=runtime_url)
    assert secret_value(settings.runtime_database_url) == DATABASE_URL
    [warning] = settings.warnings
    assert "RUNTIME_DATABASE_URL" in warning and "direct" in warning


def test_a_direct_runtime_url_is_warned_about_not_refused():
    settings = settings_for("prod", base="prod", runtime_url="postgres://app:pw@db.example.com:5432/app")
    [warning] = settings.warnings
    assert "direct connection" in warning and "6543" in warning
    assert "pw" not in warning


def test_an_unparseable_runtime_url_is_refused_without_quoting_it():
    [problem] = problems_of("prod", base="prod", runtime_url="postgres://app:se@cret@db:5432/app")
    assert problem.startswith("`runtimeDatabaseUrl` (RUNTIME_DATABASE_URL):")
    assert "cret" not in problem


def test_the_pooler_is_refused_as_the_direct_url_but_accepted_as_the_runtime_one():
    problems = problems_of("prod", base="prod", database_url=POOLER_URL, runtime_url=POOLER_URL)
    assert [p for p in problems if "runtimeDatabaseUrl" in p] == []
    assert any(p.startswith("`databaseUrl` (DATABASE_URL):") and "6543" in p for p in problems)


def test_the_stack_files_budgets_fit_and_previews_default_small():
    prod, preview = settings_for("prod", base="prod"), settings_for("preview-pr-4")
    for settings in (prod, preview):
        worst = settings.api_function_count * settings.api_reserved_concurrency * settings.api_pool_size
        assert worst <= settings.database_connection_limit
    assert preview.api_reserved_concurrency < prod.api_reserved_concurrency
    assert declared_keys()["apiReservedConcurrency"].default <= preview.api_reserved_concurrency


def test_a_budget_over_the_limit_is_refused_in_one_line_naming_each_number():
    [problem] = problems_of(
        "preview-pr-4", apiFunctionCount=7, apiReservedConcurrency=3, apiPoolSize=2, databaseConnectionLimit=41
    )
    assert "\n" not in problem
    for number, key in (("7", "apiFunctionCount"), ("3", "apiReservedConcurrency"), ("2", "apiPoolSize"),
                        ("42", ""), ("41", "databaseConnectionLimit")):  # fmt: skip
        assert number in problem and key in problem
    # One connection less is within the budget.
    settings_for("preview-pr-4", apiFunctionCount=7, apiReservedConcurrency=3, apiPoolSize=2, databaseConnectionLimit=42)


@pytest.mark.parametrize("key", ["apiReservedConcurrency", "apiPoolSize", "apiFunctionCount", "databaseConnectionLimit"])
def test_budget_numbers_must_be_positive(key):
    problems = problems_of("prod", base="prod", **{key: 0})
    assert problems == [f"`{key}` must be at least 1, got 0"]


def test_settings_errors_reach_the_engine_without_a_traceback():
    import pulumi

    # The Python host logs a RunError's message alone; any other exception with its traceback.
    with pytest.raises(pulumi.RunError):
        settings_for("prod", base="prod", apiPoolSize=50)

# --- the app's shape (docs/bring-your-own-app.md) -----------------------------------------------


def test_app_shape_defaults_are_examples_apps_layout():
    app = settings_for("prod", base="prod").app
    assert (app.schema_package, app.drizzle_config) == ("packages/shared-schemas", "drizzle.config.ts")
    assert (app.api_dir, app.api_entry, app.api_format, app.web_dir) == ("apps/api", "src/handler.ts", "cjs", "apps/web")
    assert app.site_outputs == (("NEXT_PUBLIC_API_URL", "apiUrl"), ("NEXT_PUBLIC_STACK", "stack"))
    assert app.api_environment == {} and app.api_secret_environment == {}


BAD_SHAPE = {
    "apiDir": "apps/missing",
    "apiFormat": "umd",
    "apiExternal": ["Not A Module"],
    "apiEnvironment": ["DB_SCHEMA=x", "AWS_REGION=y", "novalue"],
    "siteOutputs": ["NEXT_PUBLIC_X=password", "PATH=apiUrl"],
    "packageManager": "bun",
}


def test_a_path_outside_the_app_is_refused_before_any_file_is_looked_at():
    problems = problems_of("prod", base="prod", **BAD_SHAPE, webDir="../outside")
    assert "`webDir` '../outside' must be a relative path inside the app (no '..')" in problems


def test_app_shape_problems_name_each_key_at_once():
    with pytest.raises(SettingsError) as error:
        settings_for("prod", base="prod", **BAD_SHAPE)
    text = str(error.value)
    for expected in (
        "apps/missing/src/handler.ts does not exist: set `apiDir`/`apiEntry`",
        "`apiFormat` must be cjs or esm",
        "`apiExternal` 'Not A Module' is not an npm module name",
        "`apiEnvironment` sets DB_SCHEMA, which the pipeline sets itself",
        "`apiEnvironment` sets AWS_REGION, a name AWS Lambda reserves",
        "`apiEnvironment` item 'novalue' is not NAME=value",
        "the output must be one of apiUrl, apiBaseUrl, siteUrl, stack, dbSchema",
        "`siteOutputs` variable PATH is one the site build sets itself",
        "`packageManager` 'bun' is not one of npm, pnpm, yarn",
    ):
        assert expected in text, text


def test_secret_environment_only_from_a_pulumi_secret_and_never_echoed():
    from components.settings import secret_environment

    problems: list[str] = []
    assert secret_environment('{"SIGNING_KEY": "s3cr3t-value"}', False, problems) == {}
    assert "plain config" in problems[0] and "s3cr3t-value" not in problems[0]
    problems = []
    assert secret_environment('{"SIGNING_KEY": "s3cr3t-value", "DATABASE_URL": "x"}', True, problems) == {
        "SIGNING_KEY": "s3cr3t-value"
    }
    assert problems == ["`apiSecretEnvironment` sets DATABASE_URL, which the pipeline sets itself: drop it (or use another name)"]
    problems = []
    secret_environment("not json s3cr3t", True, problems)
    assert "JSON object" in problems[0] and "s3cr3t" not in problems[0]


def test_the_app_cannot_set_its_own_pool_size_around_the_budget():
    problems = problems_of("prod", base="prod", apiEnvironment=["DB_POOL_SIZE=50"])
    assert problems == ["`apiEnvironment` sets DB_POOL_SIZE, which the pipeline sets itself: drop it (or use another name)"]


# --- values the settings once took in silence (issue 27 §8) --------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"apiReservedConcurrency": 2.5}, "`apiReservedConcurrency` must be a whole number, got '2.5'"),
        ({"migrationTimeoutSeconds": float("inf")}, "`migrationTimeoutSeconds` must be a whole number, got 'inf'"),
        ({"canarySeconds": float("nan")}, "`canarySeconds` must be a whole number, got 'nan'"),
        ({"migrationTimeoutSeconds": 10**12}, "`migrationTimeoutSeconds` must be at most 86400 seconds (a day), got 1000000000000"),
        ({"canarySeconds": 86401}, "`canarySeconds` must be at most 86400 seconds (a day), got 86401"),
        ({"domain": "exa mple.com"}, "`domain` 'exa mple.com' is not a lower-case DNS zone name"),
        ({"domain": "example.com\n"}, "`domain` 'example.com\\n' is not a lower-case DNS zone name"),
        ({"domain": "example"}, "`domain` 'example' is not a lower-case DNS zone name"),
    ],
    ids=["fraction", "inf", "nan", "a-trillion-seconds", "over-a-day", "space", "newline", "no-dot"],
)
def test_values_once_taken_in_silence_are_refused(overrides, expected):
    [problem] = problems_of("preview-pr-3", **overrides)
    assert problem.startswith(expected), problem


def test_a_yaml_inf_from_a_stack_file_is_refused_not_a_traceback(tmp_path):
    import yaml

    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  webstack:migrationTimeoutSeconds: .inf\n  webstack:apiPoolSize: 2.5\n")
    values = stack_file_values("prod", "webstack", tmp_path)
    assert values == {"migrationTimeoutSeconds": float("inf"), "apiPoolSize": 2.5}  # what YAML makes of them
    problems = problems_of("prod", base="prod", **values)
    assert problems == [
        "`migrationTimeoutSeconds` must be a whole number, got 'inf': fix it with `pulumi config set migrationTimeoutSeconds ...`",
        "`apiPoolSize` must be a whole number, got '2.5': fix it with `pulumi config set apiPoolSize ...`",
    ]
    assert yaml  # the loader the stack files are read with


def test_a_bad_stack_name_breaks_no_line_of_the_listing():
    # Without a stack file the engine resolves nothing: each missing key is listed too, and none of
    # them names a file after the bad name (the newline in it would start a line of its own).
    with pytest.raises(SettingsError) as caught:
        parse_settings(project="webstack", stack="preview-pr-7\nx", values={}, secrets={}, keys=declared_keys())
    first, *missing = caught.value.problems
    assert first == (
        "stack name 'preview-pr-7\\nx' is not one of `prod`, `preview` or `preview-pr-<N>`: "
        "select one of those (`pulumi stack select preview-pr-42 --create`)"
    )
    assert missing and all("\n" not in problem for problem in missing)
    assert all("set it in the stack's config file" in problem for problem in missing if problem.startswith("missing `"))
    assert all(line.startswith(("stack ", "  - ")) for line in str(caught.value).splitlines())


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("lambdaMemoryMb", 64, "`lambdaMemoryMb` must be from 128 to 10240 MB (Lambda's limits), got 64"),
        ("lambdaMemoryMb", 10**9, "`lambdaMemoryMb` must be from 128 to 10240 MB (Lambda's limits), got 1000000000"),
        ("lambdaTimeoutSeconds", 0, "`lambdaTimeoutSeconds` must be from 1 to 900 seconds (Lambda's limits), got 0"),
        ("lambdaTimeoutSeconds", 901, "`lambdaTimeoutSeconds` must be from 1 to 900 seconds (Lambda's limits), got 901"),
    ],
)
def test_the_settings_refuse_what_the_aws_provider_would(key, value, said):
    """The same ranges the provider's Check refuses (core/aws_limits.py, one place), said
    before anything is declared, in the settings' words."""
    assert problems_of("preview-pr-4", **{key: value}) == [said]
    for fine in (aws_limits.LAMBDA_MEMORY_MB if key == "lambdaMemoryMb" else aws_limits.LAMBDA_TIMEOUT_SECONDS):
        settings_for("preview-pr-4", **{key: fine})
