"""IAM's policy evaluation, for the condition operators the program's documents use.

Enough of AWS's logic ("Policy evaluation logic", IAM User Guide; "Key policies", KMS Developer
Guide) to decide a request against the documents the program declares: Action/NotAction,
Resource/NotResource (IAM's wildcards), a resource policy's Principal, and the string, ARN, Null
and Bool operators, a negated one holding when its key is absent. An operator it does not know
fails the test instead of passing in silence.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from policy.rules import arn_matches


def _list(value: Any) -> list:
    return [] if value is None else [value] if isinstance(value, (str, dict)) else list(value)


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            values, present = [str(v) for v in _list(wanted)], context.get(key)
            if operator in ("StringEquals", "ArnEquals"):
                holds = present is not None and present in values
            elif operator in ("StringLike", "ArnLike"):
                holds = present is not None and any(arn_matches(v, present) for v in values)
            elif operator in ("StringNotEquals", "ArnNotEquals"):  # true when the key is absent (IAM)
                holds = present is None or present not in values
            elif operator in ("StringNotLike", "ArnNotLike"):
                holds = present is None or not any(arn_matches(v, present) for v in values)
            elif operator == "Null":
                holds = (present is None) == (values == ["true"])
            elif operator == "Bool":
                holds = present is not None and present.lower() in [v.lower() for v in values]
            else:  # an operator this evaluator does not know must not pass in silence
                raise AssertionError(f"condition operator {operator} is not evaluated here")
            if not holds:
                return False
    return True


def statement_applies(statement: Mapping[str, Any], principal: str | None, action: str, resource: str, context) -> bool:
    if "NotAction" in statement:
        if _action_matches(_list(statement["NotAction"]), action):
            return False
    elif not _action_matches(_list(statement.get("Action")), action):
        return False
    if "NotResource" in statement:
        if any(arn_matches(r, resource) for r in _list(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(r == "*" or arn_matches(r, resource) for r in _list(statement["Resource"])):
        return False
    if principal is not None:  # a resource policy: the statement names who
        named = statement.get("Principal")
        aws = _list(named.get("AWS")) if isinstance(named, dict) else _list(named)
        if "*" not in aws and principal not in aws:
            return False
    return condition_holds(statement.get("Condition") or {}, context)


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _list(document.get("Statement"))


def kms_allows(
    key_policy: dict,
    identity_policies: list[dict],
    role_arn: str,
    action: str,
    key_arn: str,
    via: str | None,
    *,
    account: str,
    encryption_context: Mapping[str, str] | None = None,
) -> bool:
    """Whether AWS lets the role (of the key's own account) do `action` with the key: an explicit
    Deny in either document wins; otherwise the key policy allows the role itself, or allows the
    account's root, which hands the decision to the role's policies. `encryption_context` is what
    the calling service sends (S3: `aws:s3:arn`), matched as `kms:EncryptionContext:<key>`."""
    root = f"arn:aws:iam::{account}:root"
    context = {"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account}
    context |= {f"kms:EncryptionContext:{k}": v for k, v in (encryption_context or {}).items()}
    if via is not None:
        context["kms:ViaService"] = via
    key_statements = [(s, principal) for s in statements(key_policy) for principal in (role_arn, root)]
    role_statements = [s for document in identity_policies for s in statements(document)]
    if any(s["Effect"] == "Deny" and statement_applies(s, p, action, key_arn, context) for s, p in key_statements):
        return False
    if any(s["Effect"] == "Deny" and statement_applies(s, None, action, key_arn, context) for s in role_statements):
        return False
    applies = lambda p: any(s["Effect"] == "Allow" and statement_applies(s, p, action, key_arn, context) for s, _ in key_statements)  # noqa: E731
    if applies(role_arn):  # the key's policy names the role itself (or everyone)
        return True
    return applies(root) and any(s["Effect"] == "Allow" and statement_applies(s, None, action, key_arn, context) for s in role_statements)
