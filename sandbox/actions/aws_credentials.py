"""Stand-in of aws-actions/configure-aws-credentials v4.0.2 (e3dd6a429d7300a6a4c196c26e071d42e0343502),
taking the same path through GitHub's OIDC token and STS as upstream's src/index.ts and
src/assumeRole.ts:

1. `aws-region` is checked (`Region is not valid: X`) and exported as AWS_REGION and
   AWS_DEFAULT_REGION;
2. with `role-to-assume` and neither keys nor a token file, the job's ID token is requested for
   `audience` (default `sts.amazonaws.com`) from GitHub's token service. Here that service is the
   GitHub stand-in (sandbox/github_api.py), which knows each job's `environment` and permissions
   and answers only a job with `id-token: write`; for any other job the stand-in acts as upstream
   does when ACTIONS_ID_TOKEN_REQUEST_TOKEN is missing: it prints upstream's hint and looks for
   credentials in the environment, which on a runner are none ("Credentials could not be loaded,
   please check your action inputs: Could not load credentials from any providers");
3. STS AssumeRoleWithWebIdentity (RoleArn, RoleSessionName default `GitHubActions`,
   DurationSeconds default 3600) against the local cloud's STS (AWS_ENDPOINT_URL), which checks
   the token and the role's trust policy as AWS does (sandbox/sts_web_identity.py). A refusal
   fails the step with upstream's message, `Could not assume role with OIDC: Not authorized to
   perform sts:AssumeRoleWithWebIdentity`, after upstream's retries (12 attempts, a random
   backoff of up to 50 ms x 2^n; `disable-retry`, `retry-max-attempts`);
4. the credentials are masked and exported (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
   AWS_SESSION_TOKEN), `Authenticated as assumedRoleId ...` is printed, and GetCallerIdentity with
   them sets the `aws-account-id` output.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

import requests

from sandbox.actions.toolkit import (
    ActionFailed,
    export_variable,
    get_bool_input,
    get_input,
    info,
    set_output,
    set_secret,
)

REGION = re.compile(r"[a-z0-9-]+")
DEFAULT_SESSION_NAME = "GitHubActions"
DEFAULT_DURATION = 3600
NO_CREDENTIALS = "Credentials could not be loaded, please check your action inputs: Could not load credentials from any providers"
T = TypeVar("T")


def retry_and_backoff(fn: Callable[[], T], retryable: bool, max_retries: int = 12, base: float = 0.05) -> T:
    """helpers.ts retryAndBackoff: any error is retried, after a random sleep of up to base x 2^n."""
    retries = 0
    while True:
        try:
            return fn()
        except Exception:
            if not retryable:
                raise
            time.sleep(random.random() * (2**retries) * base)  # noqa: S311  # nosec B311 - jitter, not a secret
            retries += 1
            if retries >= max_retries:
                raise


class NoIdTokenPermission(Exception):
    """The job may not ask for an ID token (GitHub would not have given it the request variables)."""


def id_token(audience: str) -> str:
    """core.getIDToken: GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=... with the request token. The
    job is named in the query: act gives every job of a run the same request variables."""
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not request_token:
        raise NoIdTokenPermission()
    params = {
        "audience": audience,
        "run_id": os.environ.get("GITHUB_RUN_ID", ""),
        "workflow": os.environ.get("GITHUB_WORKFLOW", ""),
        "job": os.environ.get("GITHUB_JOB", ""),
    }
    answer = requests.get(url, params=params, headers={"Authorization": f"Bearer {request_token}"}, timeout=30)
    if answer.status_code == 403:
        raise NoIdTokenPermission()
    if answer.status_code != 200:
        raise RuntimeError(f"Failed to get ID Token. Error Code : {answer.status_code} Error Message: {answer.text[:200]}")
    value = answer.json().get("value")
    if not value:
        raise RuntimeError("Response json body do not have ID Token field")
    set_secret(value)
    return str(value)


def _export_credentials(credentials: dict) -> None:
    for name, variable in (("AccessKeyId", "AWS_ACCESS_KEY_ID"), ("SecretAccessKey", "AWS_SECRET_ACCESS_KEY"),
                           ("SessionToken", "AWS_SESSION_TOKEN")):  # fmt: skip
        value = credentials.get(name)
        if value:
            set_secret(str(value))
            export_variable(variable, str(value))


def _ambient_credentials() -> bool:
    import botocore.session  # noqa: PLC0415 - boto only for the steps that reach AWS

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    return botocore.session.Session().get_credentials() is not None


def configure() -> None:
    region = get_input("aws-region", required=True)
    role = get_input("role-to-assume")
    audience = get_input("audience") or "sts.amazonaws.com"
    access_key = get_input("aws-access-key-id")
    token_file = get_input("web-identity-token-file")
    role_chaining = get_bool_input("role-chaining")
    session_name = get_input("role-session-name") or DEFAULT_SESSION_NAME
    try:
        duration = int(get_input("role-duration-seconds") or 0) or DEFAULT_DURATION
        max_retries = max(1, int(get_input("retry-max-attempts") or 0) or 12)
    except ValueError as exc:
        raise ActionFailed(str(exc)) from None
    retryable = not get_bool_input("disable-retry")
    if access_key or token_file or role_chaining:
        raise ActionFailed("the local stand-in supports GitHub OIDC only (no access keys, token files or role chaining)")
    if not REGION.fullmatch(region):
        raise ActionFailed(f"Region is not valid: {region}")
    export_variable("AWS_DEFAULT_REGION", region)
    export_variable("AWS_REGION", region)

    web_identity_token = None
    if role:
        try:
            web_identity_token = retry_and_backoff(lambda: id_token(audience), retryable, max_retries)
        except NoIdTokenPermission:
            info(
                "It looks like you might be trying to authenticate with OIDC. Did you mean to set the `id-token` "
                "permission? If you are not trying to authenticate with OIDC and the action is working "
                "successfully, you can ignore this message."
            )
        except Exception as exc:  # noqa: BLE001 - upstream wraps any failure of getIDToken
            raise ActionFailed(f"getIDToken call failed: {exc}") from None
    if web_identity_token is None:
        if not _ambient_credentials():
            raise ActionFailed(NO_CREDENTIALS)
        if not role:
            info("Proceeding with IAM user credentials")
            return
        raise ActionFailed("the local stand-in assumes roles with GitHub OIDC only")

    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    # Unsigned, as the JS SDK sends AssumeRoleWithWebIdentity: the token is the credential.
    from botocore import UNSIGNED  # noqa: PLC0415

    sts = boto3.client("sts", region_name=region, config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    info("Assuming role with OIDC")

    def assume() -> dict:
        try:
            return sts.assume_role_with_web_identity(
                RoleArn=role, RoleSessionName=session_name, DurationSeconds=duration, WebIdentityToken=web_identity_token
            )
        except ClientError as exc:
            raise RuntimeError(f"Could not assume role with OIDC: {exc.response.get('Error', {}).get('Message', str(exc))}") from None
        except BotoCoreError as exc:
            raise RuntimeError(f"Could not assume role with OIDC: {exc}") from None

    try:
        answer = retry_and_backoff(assume, retryable, max_retries)
    except RuntimeError as exc:
        raise ActionFailed(str(exc)) from None
    info(f"Authenticated as assumedRoleId {answer['AssumedRoleUser']['AssumedRoleId']}")
    _export_credentials(answer["Credentials"])
    creds = answer["Credentials"]
    identity = boto3.client(
        "sts", region_name=region, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds.get("SessionToken"),
    ).get_caller_identity()  # fmt: skip
    if not identity.get("Account"):
        raise ActionFailed("Could not get Account ID from STS. Did you set credentials?")
    set_output("aws-account-id", identity["Account"])


STAGES = {("configure-aws-credentials", "main"): configure}
