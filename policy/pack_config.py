"""The pack's config for one stack: what `--policy-pack-config FILE` hands the rules.

    python -m policy.pack_config --stack "$STACK" --repository "$REPOSITORY" \
        [--repository-id ID --repository-owner-id ID] [--prod-environment NAME ...]
        [--preview-environment NAME ...] [--sweeper-environment NAME ...] --output FILE

- `deploy-role-subjects.repository`: the repository running the workflow (`${{ github.repository }}`,
  with `github.repository_id`/`github.repository_owner_id` for GitHub's immutable subjects). It comes
  from the run, not from the stack's settings, so a stack that trusts another repository is refused.
- `function-url-intended.siteOrigin`: the stack's own site, derived from the stack's settings exactly
  as the program derives it (`Settings.site_url`), so a public URL may admit that origin only.
- `deploy-role-subjects.prodEnvironments` / `previewEnvironments` / `sweeperEnvironments`: only when
  given here; trusting a GitHub environment stays an explicit decision of the workflow, not something
  a stack file can grant itself. `sweeperEnvironments` replaces the pack's default (`preview-sweeper`).

Runs in the program's virtualenv (it reads the stack's settings the way the program does), never
inside the pack, which stays self-contained.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.settings import (
    PROJECT_FILE,
    config_file_values,
    SettingsError,
    declared_keys,
    parse_settings,
    stack_file_values,
)
from core import names
from core.names import PR_STACK


def site_origin(stack: str, config_file: Path | None = None, values: Mapping[str, Any] | None = None) -> str:
    """The stack's own site, `https://host`, as the program derives it from the stack's settings
    (its file in the repository, or the `--config-file` the stack runs with)."""
    return _settings(stack, config_file, values)[0].site_url.rstrip("/")


def _settings(stack: str, config_file: Path | None, values: Mapping[str, Any] | None = None):
    """The stack's Settings and plain values: `values` when given (tests), else its config file's."""
    project = _project()
    if values is None:
        values = config_file_values(config_file, project) if config_file else stack_file_values(stack, project)
    # The names do not depend on the database URL: an Output stands in for the secret, as
    # `pulumi.Config.get_secret` hands it to the program (so no URL is checked or needed here).
    settings = parse_settings(
        project=project,
        stack=stack,
        values=values,
        secrets={"databaseUrl": pulumi.Output.secret("not used for names")},
        keys=declared_keys(),
    )
    return settings, values


def pack_config(
    stack: str,
    repository: str,
    *,
    repository_id: str = "",
    repository_owner_id: str = "",
    prod_environments: Sequence[str] = (),
    preview_environments: Sequence[str] = (),
    sweeper_environments: Sequence[str] = (),
    config_file: Path | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `--policy-pack-config` document for `stack`, keyed by policy name (`values`: the stack's
    plain settings when not read from its config file)."""
    subjects: dict[str, Any] = {"repository": repository}
    if repository_id and repository_owner_id:
        subjects |= {"repositoryId": repository_id, "repositoryOwnerId": repository_owner_id}
    if prod_environments:
        subjects["prodEnvironments"] = list(prod_environments)
    if preview_environments:
        subjects["previewEnvironments"] = list(preview_environments)
    if sweeper_environments:
        subjects["sweeperEnvironments"] = list(sweeper_environments)
    # The account is prod's (the account foundation), read from this checkout's prod stack file: in a
    # pull request's job that is the base branch's, which the pull request cannot change.
    account = {"accountId": str(stack_file_values(names.PROD_STACK, _project()).get("awsAccountId") or "")}
    return {
        "deploy-role-subjects": subjects,
        "function-url-intended": {"siteOrigin": site_origin(stack, config_file, values)},
        "role-shapes": account,
        "resource-policy-principals": account,
    }


def _project() -> str:
    return str(yaml.safe_load(PROJECT_FILE.read_text())["name"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.pack_config", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--repository", required=True, help="owner/name, i.e. ${{ github.repository }}")
    parser.add_argument("--repository-id", default="")
    parser.add_argument("--repository-owner-id", default="")
    parser.add_argument("--prod-environment", action="append", default=[], dest="prod_environments")
    parser.add_argument("--preview-environment", action="append", default=[], dest="preview_environments")
    parser.add_argument("--sweeper-environment", action="append", default=[], dest="sweeper_environments")
    parser.add_argument("--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--config-file", type=Path, help="the stack's config file when not Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    if args.repository.count("/") != 1 or not all(args.repository.split("/")):
        print(f"pack_config: --repository {args.repository!r} is not owner/name", file=sys.stderr)
        return 2
    try:
        config = pack_config(
            args.stack,
            args.repository,
            repository_id=args.repository_id,
            repository_owner_id=args.repository_owner_id,
            prod_environments=args.prod_environments,
            preview_environments=args.preview_environments,
            sweeper_environments=args.sweeper_environments,
            config_file=args.config_file,
        )
    except SettingsError as error:
        print(f"pack_config: {error}", file=sys.stderr)
        return 2
    text = json.dumps(config, indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
