"""A loopback stand-in for CloudTrail's LookupEvents, which moto_server does not implement (moto 5.2
serves the trail resources themselves: CreateTrail, StartLogging, ...; not the event history).

It speaks the real wire protocol, so boto3's own `cloudtrail` client (and the AWS CLI) talk to it
with `endpoint_url=<stub.url>` (or `AWS_ENDPOINT_URL_CLOUDTRAIL`): AWS JSON 1.1, `POST /` with
`X-Amz-Target: [com.amazonaws.cloudtrail.v20131101.]CloudTrail_20131101.LookupEvents`, a body of `LookupAttributes` (at most one, as
AWS allows), `StartTime`/`EndTime` (epoch seconds), `MaxResults` (1-50) and `NextToken`, answered
with `{"Events": [...], "NextToken"}`, newest first. Each event has the fields AWS returns: EventId,
EventName, ReadOnly, AccessKeyId, EventTime, EventSource, Username, Resources and CloudTrailEvent
(the full record as a JSON string, with `userIdentity.sessionContext.sessionIssuer.arn`).
Requests are not signature-checked (nor does moto check them).

`record(...)` plants an event as CloudTrail would have logged it; `events` lists them.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.http_server import Reply, Request, StandIn

# botocore's model has sent the fully qualified target since 2024; older clients the short one.
TARGETS = ("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents", "CloudTrail_20131101.LookupEvents")
CONTENT_TYPE = "application/x-amz-json-1.1"
ATTRIBUTES = {"EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource", "AccessKeyId"}


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, json={"__type": code, "message": message}, headers={"Content-Type": CONTENT_TYPE})


class CloudTrailStub(StandIn):
    """The event history and its LookupEvents endpoint; a context manager (it owns a StubServer)."""

    def __init__(self, *, account: str = "123456789012", region: str = "us-east-1", port: int = 0):
        self.account = account
        self.region = region
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(port=port)

    def record(
        self,
        event_name: str,
        event_source: str,
        *,
        role_arn: str | None = None,
        user: str | None = None,
        session: str = "session",
        when: datetime | None = None,
        read_only: bool = False,
        resources: list[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """One management event by an assumed role (`role_arn`) or an IAM user (`user`)."""
        when = when or datetime.now(UTC)
        if role_arn:
            role_name = role_arn.rsplit("/", 1)[-1]
            identity = {
                "type": "AssumedRole",
                "principalId": f"AROAEXAMPLE:{session}",
                "arn": f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}",
                "accountId": self.account,
                "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn, "userName": role_name}},
            }
            username = session
        else:
            username = user or "someone"
            identity = {"type": "IAMUser", "arn": f"arn:aws:iam::{self.account}:user/{username}",
                        "accountId": self.account, "userName": username}  # fmt: skip
        event_id = str(uuid.uuid4())
        record = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": event_source,
            "eventName": event_name,
            "awsRegion": self.region,
            "eventID": event_id,
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "recipientAccountId": self.account,
        }
        event = {
            "EventId": event_id,
            "EventName": event_name,
            "ReadOnly": "true" if read_only else "false",
            "AccessKeyId": "ASIAEXAMPLE",
            "EventTime": when.timestamp(),
            "EventSource": event_source,
            "Username": username,
            "Resources": [{"ResourceType": kind, "ResourceName": name} for kind, name in resources],
            "CloudTrailEvent": json.dumps(record),
        }
        with self._lock:
            self.events.append(event)
        return event

    def _answer(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/":
            return _error(404, "UnknownOperationException", "no such route")
        if request.headers.get("x-amz-target") not in TARGETS:
            return _error(400, "UnknownOperationException", f"operation {request.headers.get('x-amz-target')!r} is not served here")
        body = request.json or {}
        attributes = body.get("LookupAttributes") or []
        if len(attributes) > 1:
            return _error(400, "InvalidLookupAttributesException", "only one lookup attribute may be specified")
        for attribute in attributes:
            if attribute.get("AttributeKey") not in ATTRIBUTES:
                return _error(400, "InvalidLookupAttributesException", "unknown attribute key")
        limit = int(body.get("MaxResults") or 50)
        if not 1 <= limit <= 50:
            return _error(400, "InvalidMaxResultsException", "MaxResults must be from 1 to 50")
        start = float(body.get("StartTime") or 0)
        end = float(body.get("EndTime") or 1e12)
        if start > end:
            return _error(400, "InvalidTimeRangeException", "StartTime is after EndTime")

        def matches(event: dict[str, Any]) -> bool:
            if not start <= event["EventTime"] <= end:
                return False
            for attribute in attributes:
                key, value = attribute["AttributeKey"], attribute.get("AttributeValue")
                if key in ("ResourceType", "ResourceName"):
                    field = key.removeprefix("Resource")
                    if not any(r[f"Resource{field}"] == value for r in event["Resources"]):
                        return False
                elif event.get(key) != value:
                    return False
            return True

        with self._lock:
            found = sorted((e for e in self.events if matches(e)), key=lambda e: e["EventTime"], reverse=True)
        offset = int(body.get("NextToken") or 0)
        page = found[offset : offset + limit]
        answer: dict[str, Any] = {"Events": page}
        if offset + limit < len(found):
            answer["NextToken"] = str(offset + limit)
        return Reply(200, json=answer, headers={"Content-Type": CONTENT_TYPE})
