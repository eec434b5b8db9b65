"""What STS checks before AssumeRoleWithWebIdentity hands out credentials, which moto skips.

moto 5.2's `assume_role_with_web_identity` is its `assume_role`: any token, any role, any trust
policy. sandbox/moto_server.py runs `check(...)` on every AssumeRoleWithWebIdentity first and
answers STS's own error when it fails, so the local cloud refuses what AWS would refuse:

1. the token is a JWT whose `iss` names an IAM OIDC provider of the role's account (moto's IAM
   data), else `InvalidIdentityToken` "No OpenIDConnect provider found in your account for <iss>";
2. its RS256 signature verifies against the issuer's keys (the JWKS an issuer registered with the
   local cloud, as AWS fetches `<iss>/.well-known/openid-configuration`), else
   `InvalidIdentityToken`; `exp` has not passed (`ExpiredTokenException`), `nbf` has;
3. its `aud` is one of the provider's client ids (`InvalidIdentityToken` "Incorrect token audience");
4. the role exists and its trust policy (read from moto) allows it: an `Allow` statement whose
   `Principal.Federated` is that provider's ARN, whose `Action` covers
   `sts:AssumeRoleWithWebIdentity`, and whose `Condition` holds for the token's claims under the
   keys `<provider url>:aud`, `:sub` (and `:amr`), with StringEquals / StringLike (their `Not`
   and `IfExists` forms, `ForAnyValue:` / `ForAllValues:` over a list-valued claim); no matching
   `Deny`. Else `AccessDenied` "Not authorized to perform sts:AssumeRoleWithWebIdentity" (403):
   AWS says no more than that, whichever part failed;
5. `RoleSessionName` matches `[\\w+=,.@-]{2,64}` and `DurationSeconds` is within 900 and the role's
   MaxSessionDuration (`ValidationError`).

Sources: the STS API reference (AssumeRoleWithWebIdentity: errors and parameters), the IAM User
Guide "IAM JSON policy elements: Condition operators" and "Available keys for AWS web identity
federation" (only aud, sub and amr are condition keys of an OIDC provider), and AWS's guide to
GitHub's OIDC provider (`token.actions.githubusercontent.com:sub`/`:aud`).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.iam_conditions import as_list, conditions_hold

ACTION = "sts:AssumeRoleWithWebIdentity"
DENIED = f"Not authorized to perform {ACTION}"
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
CLAIM_KEYS = ("aud", "sub", "amr")
MIN_DURATION = 900


@dataclass(frozen=True)
class StsError(Exception):
    """An error as STS answers it (query protocol): code, message, HTTP status."""

    code: str
    message: str
    status: int = 400

    def xml(self, request_id: str) -> bytes:
        kind = "Sender" if self.status < 500 else "Receiver"
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>{kind}</Type><Code>{self.code}</Code><Message>{_xml_text(self.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return body.encode()


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Provider:
    arn: str
    url: str
    """As IAM keeps it: host and path, no scheme (`token.actions.githubusercontent.com`)."""
    client_ids: tuple[str, ...]


@dataclass(frozen=True)
class Role:
    arn: str
    trust_policy: Mapping[str, Any]
    max_session_duration: int


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = token.split(".")
    if len(parts) != 3:
        raise StsError("InvalidIdentityToken", "The web identity token that was passed is not a JWT")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except ValueError:
        raise StsError("InvalidIdentityToken", "The web identity token that was passed could not be parsed") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise StsError("InvalidIdentityToken", "The web identity token that was passed could not be parsed")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _verify_signature(header: Mapping[str, Any], signed: bytes, signature: bytes, jwks: Mapping[str, Any]) -> None:
    if header.get("alg") != "RS256":
        raise StsError("InvalidIdentityToken", f"The token's signing algorithm {header.get('alg')!r} is not supported")
    keys = [k for k in jwks.get("keys") or [] if isinstance(k, Mapping) and k.get("kty") == "RSA"]
    if header.get("kid") is not None:
        keys = [k for k in keys if k.get("kid") == header["kid"]]
    for jwk in keys:
        try:
            public = rsa.RSAPublicNumbers(
                int.from_bytes(_b64decode(str(jwk["e"])), "big"), int.from_bytes(_b64decode(str(jwk["n"])), "big")
            ).public_key()
            public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            return
        except (InvalidSignature, KeyError, ValueError):
            continue
    raise StsError(
        "InvalidIdentityToken",
        "The web identity token that was passed could not be validated by Amazon Web Services. Get a new "
        "identity token from the identity provider and then retry the request.",
    )


# --- trust policy evaluation ------------------------------------------------------------------


def _statement_applies(statement: Mapping[str, Any], principal: str, context: Mapping[str, list[str]]) -> bool:
    if "NotPrincipal" in statement or "NotAction" in statement:
        return False  # not used for web identity trust; never read as a grant
    principals = statement.get("Principal")
    if principals != "*":
        federated = as_list(principals.get("Federated")) if isinstance(principals, Mapping) else []
        if principal not in federated and "*" not in federated:
            return False
    actions = [str(a).lower() for a in as_list(statement.get("Action"))]
    if not any(fnmatch.fnmatchcase(ACTION.lower(), a) for a in actions):
        return False
    # A condition this check cannot read counts against the caller: it holds for a Deny, not for an Allow.
    return conditions_hold(statement.get("Condition"), context, unknown=statement.get("Effect") == "Deny")


def trust_allows(policy: Mapping[str, Any], provider: Provider, claims: Mapping[str, Any]) -> bool:
    """Whether the role's trust policy lets a token with `claims` from `provider` assume it."""
    context = {
        f"{provider.url}:{key}".lower(): [str(v) for v in as_list(claims.get(key))]
        for key in CLAIM_KEYS
        if key in claims
    }
    statements = [s for s in as_list(policy.get("Statement")) if isinstance(s, Mapping)]
    applying = [s for s in statements if _statement_applies(s, provider.arn, context)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return False
    return any(s.get("Effect") == "Allow" for s in applying)


def parse_policy(document: str) -> Mapping[str, Any]:
    """A trust policy as IAM stores it (moto may keep it URL-encoded, as GetRole returns it)."""
    text = document.strip()
    if not text.startswith("{"):
        text = unquote(text)
    value = json.loads(text)
    if not isinstance(value, Mapping):
        raise ValueError("the trust policy is not a JSON object")
    return value


# --- the whole check ----------------------------------------------------------------------------


def check(
    params: Mapping[str, str],
    *,
    providers: Iterable[Provider],
    role_lookup: Callable[[str], Role | None],
    jwks_for: Callable[[str], Mapping[str, Any] | None],
    now: float | None = None,
) -> dict[str, Any]:
    """Validate one AssumeRoleWithWebIdentity request (`params`: RoleArn, RoleSessionName,
    WebIdentityToken, DurationSeconds); returns the token's claims, raises StsError as STS would."""
    now = time.time() if now is None else now
    role_arn = params.get("RoleArn") or ""
    session_name = params.get("RoleSessionName") or ""
    if not SESSION_NAME.fullmatch(session_name):
        raise StsError(
            "ValidationError",
            f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and length 2-64",
        )
    header, claims, signed, signature = _decode(params.get("WebIdentityToken") or "")
    issuer = str(claims.get("iss") or "")
    issuer_url = issuer.removeprefix("https://").rstrip("/")
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    provider = next((p for p in providers if p.url.rstrip("/") == issuer_url and f":{account}:" in p.arn), None)
    if provider is None or not issuer.startswith("https://"):
        raise StsError("InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}")
    jwks = jwks_for(issuer)
    if jwks is None:
        raise StsError(
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider, please reference "
            "AssumeRoleWithWebIdentity documentation for requirements",
        )
    _verify_signature(header, signed, signature, jwks)
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp <= now:
        raise StsError(
            "ExpiredTokenException",
            f"Token expired: current date/time {int(now)} must be before the expiration date/time {exp}",
        )
    if isinstance(nbf, (int, float)) and nbf > now + 60:
        raise StsError("InvalidIdentityToken", "The token is not valid yet (nbf)")
    audiences = [str(a) for a in as_list(claims.get("aud"))]
    if not any(a in provider.client_ids for a in audiences):
        raise StsError("InvalidIdentityToken", "Incorrect token audience")
    role = role_lookup(role_arn)
    if role is None or not trust_allows(role.trust_policy, provider, claims):
        raise StsError("AccessDenied", DENIED, 403)
    try:
        duration = int(params.get("DurationSeconds") or 3600)
    except ValueError:
        duration = -1
    if duration < MIN_DURATION or duration > role.max_session_duration:
        raise StsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            if duration > role.max_session_duration
            else f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy "
            "constraint: Member must have value greater than or equal to 900",
        )
    return claims
