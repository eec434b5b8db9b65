"""STS's checks of AssumeRoleWithWebIdentity in the local cloud (sandbox/sts_web_identity.py, run by
sandbox/moto_server.py), and the correction of moto's bucket-policy conditions beside them.

The trust policies are the program's own (components/aws_policies.github_trust_policy), so a
change there is evaluated as AWS would evaluate it. Each refusal is the error STS answers.
"""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from components import aws_policies
from components.aws_policies import github_trust_policy
from core.iam import GITHUB_OIDC_HOST, STS_AUDIENCE
from core.names import STATE_PREFIX
from sandbox import sts_web_identity as sts
from sandbox.github_api import OIDC_ISSUER
from sandbox.iam_conditions import conditions_hold
from sandbox.jwt_issuer import JwtIssuer
from tests.support.moto import ACCOUNT_ID, moto_server, point_aws_at  # noqa: F401 - fixture

PROVIDER = sts.Provider(arn=f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{GITHUB_OIDC_HOST}", url=GITHUB_OIDC_HOST,
                        client_ids=(STS_AUDIENCE,))  # fmt: skip
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/webstack-deploy-prod"
PROD_SUB = "repo:org/repo:environment:production"


@pytest.fixture(scope="module")
def issuer() -> JwtIssuer:
    return JwtIssuer(issuer=OIDC_ISSUER, audience=STS_AUDIENCE)


def _check(issuer: JwtIssuer, token: str, policy: dict | None = None, *, jwks: dict | None = None, **params: str) -> dict:
    role = sts.Role(ROLE_ARN, policy or github_trust_policy(PROVIDER.arn, [PROD_SUB]), 3600)
    return sts.check(
        {"RoleArn": ROLE_ARN, "RoleSessionName": "webstack-deploy-1", "WebIdentityToken": token, **params},
        providers=[PROVIDER],
        role_lookup=lambda arn: role if arn == ROLE_ARN else None,
        jwks_for=lambda iss: (jwks or {"keys": [issuer.jwk]}) if iss == OIDC_ISSUER else None,
    )


def test_the_subject_the_role_trusts_assumes_it(issuer: JwtIssuer) -> None:
    claims = _check(issuer, issuer.token(sub=PROD_SUB))
    assert claims["sub"] == PROD_SUB


@pytest.mark.parametrize(
    "sub",
    ["repo:org/repo:environment:preview", "repo:org/repo:pull_request", "repo:org/repo:ref:refs/heads/main",
     "repo:other/repo:environment:production", "repo:org/repo:environment:production-2"],
)  # fmt: skip
def test_any_other_subject_is_not_authorized(issuer: JwtIssuer, sub: str) -> None:
    with pytest.raises(sts.StsError) as refused:
        _check(issuer, issuer.token(sub=sub))
    assert (refused.value.code, refused.value.message, refused.value.status) == (
        "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)


def test_string_like_matches_wildcards_and_string_equals_does_not(issuer: JwtIssuer) -> None:
    loose = github_trust_policy(PROVIDER.arn, [PROD_SUB])
    condition = loose["Statement"][0]["Condition"]
    condition["StringLike"] = {f"{GITHUB_OIDC_HOST}:sub": "repo:org/repo:*"}
    del condition["StringEquals"][f"{GITHUB_OIDC_HOST}:sub"]
    assert _check(issuer, issuer.token(sub="repo:org/repo:pull_request"), loose)
    with pytest.raises(sts.StsError, match="Not authorized"):
        _check(issuer, issuer.token(sub="repo:org/other:pull_request"), loose)
    exact = github_trust_policy(PROVIDER.arn, [PROD_SUB])
    exact["Statement"][0]["Condition"]["StringEquals"][f"{GITHUB_OIDC_HOST}:sub"] = "repo:org/repo:*"
    with pytest.raises(sts.StsError, match="Not authorized"):
        _check(issuer, issuer.token(sub="repo:org/repo:pull_request"), exact)


def test_the_trust_must_name_the_provider_and_the_action(issuer: JwtIssuer) -> None:
    other_provider = github_trust_policy(f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/other.example.com", [PROD_SUB])
    with pytest.raises(sts.StsError, match="Not authorized"):
        _check(issuer, issuer.token(sub=PROD_SUB), other_provider)
    wrong_action = github_trust_policy(PROVIDER.arn, [PROD_SUB])
    wrong_action["Statement"][0]["Action"] = "sts:AssumeRole"
    with pytest.raises(sts.StsError, match="Not authorized"):
        _check(issuer, issuer.token(sub=PROD_SUB), wrong_action)
    denied = github_trust_policy(PROVIDER.arn, [PROD_SUB])
    denied["Statement"].append({"Effect": "Deny", "Principal": {"Federated": PROVIDER.arn},
                                "Action": "sts:AssumeRoleWithWebIdentity"})  # fmt: skip
    with pytest.raises(sts.StsError, match="Not authorized"):
        _check(issuer, issuer.token(sub=PROD_SUB), denied)


def test_the_audience_must_be_a_client_id_of_the_provider(issuer: JwtIssuer) -> None:
    with pytest.raises(sts.StsError) as refused:
        _check(issuer, issuer.token(sub=PROD_SUB, audience="https://github.com/org"))
    assert (refused.value.code, refused.value.message) == ("InvalidIdentityToken", "Incorrect token audience")


def test_a_token_of_another_key_issuer_or_time_is_refused(issuer: JwtIssuer) -> None:
    forged = JwtIssuer(issuer=OIDC_ISSUER, audience=STS_AUDIENCE)  # same iss and kid-less lookups, other key
    with pytest.raises(sts.StsError) as bad_signature:
        _check(issuer, forged.token(sub=PROD_SUB), jwks={"keys": [{**issuer.jwk, "kid": forged.kid}]})
    assert bad_signature.value.code == "InvalidIdentityToken"
    elsewhere = JwtIssuer(issuer="https://issuer.example.com", audience=STS_AUDIENCE)
    with pytest.raises(sts.StsError, match="No OpenIDConnect provider found in your account for https://issuer.example.com"):
        _check(issuer, elsewhere.token(sub=PROD_SUB))
    with pytest.raises(sts.StsError) as expired:
        _check(issuer, issuer.token(sub=PROD_SUB, ttl=-10))
    assert expired.value.code == "ExpiredTokenException"


def test_session_name_and_duration_are_validated(issuer: JwtIssuer) -> None:
    with pytest.raises(sts.StsError, match="roleSessionName"):
        _check(issuer, issuer.token(sub=PROD_SUB), RoleSessionName="x" * 65)
    with pytest.raises(sts.StsError, match="MaxSessionDuration"):
        _check(issuer, issuer.token(sub=PROD_SUB), DurationSeconds="7200")


def test_conditions_hold_as_aws_evaluates_them() -> None:
    context = {"aws:securetransport": ["true"], "k": ["a", "b"]}
    assert not conditions_hold({"Bool": {"aws:SecureTransport": "false"}}, context, unknown=True)
    assert conditions_hold({"Bool": {"aws:SecureTransport": "true"}}, context, unknown=False)
    assert not conditions_hold({"StringEquals": {"missing": "x"}}, context, unknown=False)
    assert conditions_hold({"StringEqualsIfExists": {"missing": "x"}}, context, unknown=False)
    assert conditions_hold({"StringNotEquals": {"missing": "x"}}, context, unknown=False)
    assert conditions_hold({"ForAnyValue:StringEquals": {"k": "b"}}, context, unknown=False)
    assert not conditions_hold({"ForAllValues:StringEquals": {"k": "b"}}, context, unknown=False)
    assert conditions_hold({"Null": {"missing": "true"}}, context, unknown=False)
    # An operator nobody evaluates here counts against the caller.
    assert conditions_hold({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}, context, unknown=True)
    assert not conditions_hold({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}, context, unknown=False)


# --- the same checks through moto_server, as the configure-aws-credentials stand-in meets them ---


@pytest.fixture
def oidc_role(moto_server: str, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """moto with GitHub's OIDC provider and the prod role (the program's trust policy), and an
    issuer of GitHub's `iss` whose keys are registered with it; yields (sts client, issuer)."""
    point_aws_at(monkeypatch, moto_server)
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    with JwtIssuer(issuer=OIDC_ISSUER, audience=STS_AUDIENCE) as served:
        requests.put(f"{moto_server}/_sandbox/oidc-issuer", json={"issuer": OIDC_ISSUER, "jwks_uri": served.jwks_url},
                     timeout=10).raise_for_status()  # fmt: skip
        iam = boto3.client("iam")
        provider = iam.create_open_id_connect_provider(Url=f"https://{GITHUB_OIDC_HOST}", ClientIDList=[STS_AUDIENCE],
                                                       ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]  # fmt: skip
        iam.create_role(RoleName="webstack-deploy-prod",
                        AssumeRolePolicyDocument=json.dumps(github_trust_policy(provider, [PROD_SUB])))  # fmt: skip
        yield boto3.client("sts", config=Config(signature_version=UNSIGNED)), served


def test_moto_refuses_a_subject_the_trust_policy_does_not_name(oidc_role) -> None:
    client, issuer = oidc_role
    granted = client.assume_role_with_web_identity(RoleArn=ROLE_ARN, RoleSessionName="s1",
                                                      WebIdentityToken=issuer.token(sub=PROD_SUB))  # fmt: skip
    assert granted["Credentials"]["AccessKeyId"]
    with pytest.raises(ClientError) as refused:
        client.assume_role_with_web_identity(RoleArn=ROLE_ARN, RoleSessionName="s2",
                                                WebIdentityToken=issuer.token(sub="repo:org/repo:environment:preview"))  # fmt: skip
    error = refused.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError, match="AccessDenied"):
        client.assume_role_with_web_identity(RoleArn=ROLE_ARN.replace("prod", "nothing"), RoleSessionName="s3",
                                                WebIdentityToken=issuer.token(sub=PROD_SUB))  # fmt: skip


def test_a_conditional_deny_applies_only_when_its_condition_holds(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """moto denied every request to a bucket with a conditional Deny; AWS applies the statement only
    when the condition holds. The state bucket's DenyInsecureTransport must not stop TLS clients,
    and a Deny whose condition holds must still deny."""
    point_aws_at(monkeypatch, moto_server)
    s3 = boto3.client("s3")
    for bucket, secure in (("state-like", "false"), ("deny-all-tls", "true")):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": secure}}}]}))  # fmt: skip
    s3.put_object(Bucket="state-like", Key="k", Body=b"1")
    assert s3.get_object(Bucket="state-like", Key="k")["Body"].read() == b"1"
    with pytest.raises(ClientError) as denied:
        s3.put_object(Bucket="deny-all-tls", Key="k", Body=b"1")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_state_buckets_key_rules_read_each_puts_sse_headers(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The program's state bucket policy on moto: each PutObject is judged by the SSE headers it
    sends (s3:x-amz-server-side-encryption[-aws-kms-key-id]), as S3 does; moto gave a bucket policy
    no request context, and read the NotResource Deny as an Allow."""
    point_aws_at(monkeypatch, moto_server)
    s3, kms = boto3.client("s3"), boto3.client("kms")
    bucket = "state-keys"
    arn = f"arn:aws:s3:::{bucket}"
    s3.create_bucket(Bucket=bucket)
    prod_key, preview_key = (kms.create_key(Description=d)["KeyMetadata"]["Arn"] for d in ("prod", "previews"))
    rules = aws_policies.state_bucket_key_rules(arn, project="webstack", prod_key_arn=prod_key, preview_key_arn=preview_key)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(aws_policies.bucket_policy(arn, rules)))
    prod, preview = f"{STATE_PREFIX}/.pulumi/stacks/webstack/prod.json", f"{STATE_PREFIX}/.pulumi/stacks/webstack/preview-pr-3.json"

    def put(key: str, **sse: str) -> int:
        try:
            return s3.put_object(Bucket=bucket, Key=key, Body=b"{}", **sse)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as error:
            return error.response["ResponseMetadata"]["HTTPStatusCode"]

    under = lambda key: {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}  # noqa: E731
    assert put(prod, **under(prod_key)) == 200
    assert s3.head_object(Bucket=bucket, Key=prod)["SSEKMSKeyId"] == prod_key
    assert put(prod, **under(preview_key)) == 403
    # The previews' key nowhere else: an object no other rule covers (NotResource alone).
    assert put(f"{STATE_PREFIX}/elsewhere.txt", **under(preview_key)) == 403
    assert put(f"{STATE_PREFIX}/elsewhere.txt", **under(prod_key)) == 200
    assert put(prod) == 403  # no key named: the bucket's default would not be prod's
    assert put(preview, **under(preview_key)) == 200
    assert put(preview, **under(prod_key)) == 403
    assert put(aws_policies.META_OBJECT, ServerSideEncryption="AES256") == 200
    assert put(aws_policies.META_OBJECT, **under(prod_key)) == 403
