"""IAM policy `Condition` blocks, evaluated as AWS evaluates them, for the local cloud's STS check
(sandbox/sts_web_identity.py) and its correction of moto's bucket policies (sandbox/moto_server.py).

Source: IAM User Guide, "IAM JSON policy elements: Condition operators" and "Multivalued context
keys". Every operator block must hold (AND), every key in a block must hold (AND), any of a key's
listed values may match (OR). A key missing from the request context makes a condition false,
except with `...IfExists`, the `StringNot...`/`ArnNot...` operators and `ForAllValues:`; `Null`
tests presence. String operators are case-sensitive (`...IgnoreCase` not), `...Like` takes `*` and
`?`; `Bool` compares `true`/`false` case-insensitively; `Arn...` compare as strings here.

An operator this module does not know counts against the caller: `unknown` says whether such a
condition holds (True for a Deny statement, False for an Allow), so the local cloud is never
kinder than AWS about a rule it cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S) is not None


_TESTS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda expected, actual: actual == expected,
    "StringEqualsIgnoreCase": lambda expected, actual: actual.lower() == expected.lower(),
    "StringLike": like,
    "ArnEquals": lambda expected, actual: actual == expected,
    "ArnLike": like,
    "Bool": lambda expected, actual: actual.lower() == str(expected).lower(),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}  # fmt: skip


def block_holds(operator: str, block: Mapping[str, Any], context: Mapping[str, list[str]], *, unknown: bool) -> bool:
    """One operator block (`{"StringEquals": {key: value(s), ...}}`); context keys lower-cased."""
    qualifier = ""
    if operator.split(":", 1)[0] in ("ForAnyValue", "ForAllValues"):
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    for key, expected in block.items():
        values = context.get(key.lower())
        patterns = [str(p) for p in as_list(expected)]
        if base == "Null":
            # {"Null": {"key": "true"}}: the key is absent.
            if (values is None) != (patterns[0].lower() == "true" if patterns else True):
                return False
            continue
        negated = base in _NEGATED
        test = _TESTS.get(_NEGATED.get(base, base))
        if test is None:
            return unknown
        if values is None:
            if if_exists or negated or qualifier == "ForAllValues":
                continue
            return False

        def matches(value: str) -> bool:
            return any(test(p, value) for p in patterns)

        if qualifier == "ForAllValues":
            ok = all((not matches(v)) if negated else matches(v) for v in values)
        elif qualifier == "ForAnyValue":
            ok = any((not matches(v)) if negated else matches(v) for v in values)
        else:
            ok = all(not matches(v) for v in values) if negated else any(matches(v) for v in values)
        if not ok:
            return False
    return True


def conditions_hold(conditions: Any, context: Mapping[str, list[str]], *, unknown: bool) -> bool:
    """A statement's whole `Condition` element (absent or empty: holds)."""
    if not conditions:
        return True
    if not isinstance(conditions, Mapping):
        return unknown
    return all(isinstance(block, Mapping) and block_holds(op, block, context, unknown=unknown) for op, block in conditions.items())
