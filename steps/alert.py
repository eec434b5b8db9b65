"""Alerts from the deploy steps: a Slack-compatible webhook and GitHub Actions annotations.

Library: `send_alert(severity, title, body) -> bool` (severity "critical" or "warning").
CLI:     `python -m steps.alert --severity critical|warning --title T --body B`.

- `ALERT_WEBHOOK_URL` set: POST `{"text": ..., "attachments": [...]}` (Slack incoming-webhook
  shape, also understood by Mattermost and Discord's /slack endpoint), with a short retry of its
  own (3 attempts, 20 s deadline, 5 s per request).
- `GITHUB_ACTIONS=true`: print an `::error`/`::warning` annotation (stderr; the runner reads both
  streams) and append a section to `$GITHUB_STEP_SUMMARY`.

Everything is masked (`masked=False` only for a message the runtime built from variable names and
numbers, when a secret cannot be masked safely). `send_alert` never raises: it returns False when a
configured channel could not be reached and logs why, so an undeliverable alert never hides the
failure it reports.
The CLI exits 0 when every configured channel worked, 1 otherwise; like every step it refuses
secrets that cannot be masked (exit 1, nothing sent) and sends at most TITLE_LIMIT/BODY_LIMIT
characters of --title/--body.
"""

from __future__ import annotations

import os
import sys

import requests

from steps.args import StepParser
from steps.console import in_github_actions, log, mask, secret_problems, shown, warn
from steps.retry import check_response, describe, retry_call

SEVERITIES = ("critical", "warning")
_COLOR = {"critical": "#d00000", "warning": "#e8a317"}
_WEBHOOK_TIMEOUT = 5.0
TITLE_LIMIT = 200
BODY_LIMIT = 2000


def _unmasked(text: str) -> str:
    return text


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _run_link() -> str | None:
    env = os.environ
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return None


def webhook_payload(severity: str, title: str, body: str, *, masked: bool = True) -> dict:
    """The Slack-compatible message for one alert (masked)."""
    if masked:
        title, body = mask(title), mask(body)
    link = _run_link()
    text = f"[{severity.upper()}] {title}\n{body}"
    if link:
        text += f"\n{link}"
    attachment = {"color": _COLOR[severity], "title": title, "text": body, "fallback": text}
    if link:
        attachment["title_link"] = link
    return {"text": text, "attachments": [attachment]}


def _post_webhook(url: str, payload: dict) -> None:
    response = requests.post(url, json=payload, timeout=_WEBHOOK_TIMEOUT)
    check_response(response, what="alert webhook")


def _github(severity: str, title: str, body: str, masked: bool = True) -> bool:
    level = "error" if severity == "critical" else "warning"
    mask_ = mask if masked else _unmasked
    print(
        f"::{level} title={_escape_property(mask_(title))}::{_escape_data(mask_(body))}",
        file=sys.stderr,
        flush=True,
    )
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return True
    section = f"### {severity.upper()}: {mask_(title)}\n\n```\n{mask_(body)}\n```\n\n"
    try:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(section)
    except OSError as exc:
        warn(f"could not append to GITHUB_STEP_SUMMARY: {exc}")
        return False
    return True


def send_alert(severity: str, title: str, body: str, *, masked: bool = True) -> bool:
    """Send one alert on every configured channel; True if all of them took it. Never raises."""
    if severity not in SEVERITIES:
        warn(f"unknown alert severity {shown(severity)}; sending it as critical")
        severity = "critical"
    if masked:
        log(f"alert ({severity}): {title}")
    else:
        print(f"alert ({severity}): {title}", file=sys.stderr, flush=True)
    delivered = True
    if in_github_actions():
        delivered = _github(severity, title, body, masked) and delivered
    url = os.environ.get("ALERT_WEBHOOK_URL")
    if url:
        payload = webhook_payload(severity, title, body, masked=masked)
        try:
            retry_call(
                lambda: _post_webhook(url, payload),
                what="alert webhook",
                attempts=3,
                deadline=20.0,
                initial_wait=1.0,
                max_wait=5.0,
            )
        except Exception as exc:  # noqa: BLE001 - an alert failure must not mask the original one
            warn(f"alert could not be delivered to ALERT_WEBHOOK_URL: {describe(exc)}")
            delivered = False
    return delivered


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m steps.alert", description=__doc__.splitlines()[0])
    parser.add_argument("--severity", choices=SEVERITIES, required=True)
    parser.add_argument("--title", required=True)
    parser.add_argument("--body", required=True)
    args = parser.parse_args(argv)
    unsafe = secret_problems()
    if unsafe:
        # Names and lengths only: printed as they are (masking cannot be trusted now).
        print(f"alert not sent: {'; '.join(unsafe)}", file=sys.stderr, flush=True)
        return 1
    title = shown(args.title, TITLE_LIMIT, quote=False)
    body = args.body if len(args.body) <= BODY_LIMIT else shown(args.body, BODY_LIMIT, quote=False)
    return 0 if send_alert(args.severity, title, body) else 1


if __name__ == "__main__":
    sys.exit(main())
