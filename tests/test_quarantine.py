"""workflow.quarantine against a loopback GitHub (StubServer): a verified finding opens one issue,
a later one comments on it, the gate refuses `pulumi up` while it is open, and no secret value of
a finding reaches the issue, the alert, the job summary or the log.

The findings are trufflehog's `--json` lines (pkg/output/json.go: SourceMetadata, DetectorName,
Verified, Raw, RawV2, Redacted, ExtraData, ...); trufflehog itself is never run here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from sandbox.http_server import Reply, Request, StubServer
from tests.support.http_stub import http_stub, webhook  # noqa: F401 - fixtures
from workflow import quarantine

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghs_quarantine-test-token-0123456789"
# What a finding carries of the secret: none of these may appear anywhere the scripts write.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYQUARANTINEKEY"
KEY_ID = "AKIAQUARANTINE7EXMPL"
SECRET_PARTS = (SECRET, KEY_ID, "arn:aws:iam::999999999999:user/leaked", "AIDAQUARANTINEUSERID")
COMMIT = "fbc14303ffbf8fb1c2c1914e8dda7d0121633aca"


def finding(*, verified: bool = True, file: str = "config/prod.env", line: int = 4, commit: str = COMMIT, detector: str = "AWS") -> str:
    """One line of `trufflehog git ... --json` output, shaped as pkg/output/json.go prints it."""
    return json.dumps(
        {
            "SourceMetadata": {
                "Data": {
                    "Git": {
                        "commit": commit,
                        "file": file,
                        "email": "Dev <dev@example.com>",
                        "repository": "file:///tmp/",
                        "timestamp": "2025-01-02 10:17:40 +0000",
                        "line": line,
                    }
                }
            },
            "SourceID": 1,
            "SourceType": 16,
            "SourceName": "trufflehog - git",
            "DetectorType": 2,
            "DetectorName": detector,
            "DecoderName": "PLAIN",
            "Verified": verified,
            "VerificationFromCache": False,
            "Raw": KEY_ID,
            "RawV2": KEY_ID + SECRET,
            "Redacted": KEY_ID,
            "ExtraData": {"account": "999999999999", "arn": "arn:aws:iam::999999999999:user/leaked", "user_id": "AIDAQUARANTINEUSERID"},
            "StructuredData": None,
        }
    )


class FakeGitHub:
    """The four endpoints the quarantine uses, with issues kept in memory."""

    def __init__(self, stub: StubServer, *, drop_labels: bool = False) -> None:
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[str]] = {}
        self.labels: set[str] = set()
        self.drop_labels = drop_labels
        self.stub = stub
        stub.script(self.answer)

    @property
    def url(self) -> str:
        return self.stub.url

    def add(self, *, state: str = "open", labels: tuple[str, ...] = (quarantine.LABEL,), pull_request: bool = False) -> int:
        number = len(self.issues) + 1
        self.issues[number] = {
            "number": number,
            "title": "planted",
            "state": state,
            "labels": [{"name": name} for name in labels],
            "html_url": f"https://github.com/org/repo/issues/{number}",
            **({"pull_request": {"url": "x"}} if pull_request else {}),
        }
        return number

    def answer(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, json={"message": "Bad credentials"})
        base = "/repos/org/repo"
        if request.method == "GET" and request.path == f"{base}/issues":
            wanted = request.query.get("labels", [""])[0].split(",")
            state = request.query.get("state", ["open"])[0]
            found = [
                issue for issue in sorted(self.issues.values(), key=lambda i: i["number"])
                if issue["state"] == state and all(w in [label["name"] for label in issue["labels"]] for w in wanted)
            ]
            return self.page(request, found)
        if request.method == "POST" and request.path == f"{base}/labels":
            name = request.json["name"]
            if name in self.labels:
                return Reply(422, json={"message": "Validation Failed", "errors": [{"code": "already_exists"}]})
            self.labels.add(name)
            return Reply(201, json={"name": name})
        if request.method == "POST" and request.path == f"{base}/issues":
            number = len(self.issues) + 1
            labels = [] if self.drop_labels else request.json.get("labels", [])
            self.issues[number] = {
                "number": number,
                "title": request.json["title"],
                "body": request.json["body"],
                "state": "open",
                "labels": [{"name": name} for name in labels],
                "html_url": f"https://github.com/org/repo/issues/{number}",
            }
            return Reply(201, json=self.issues[number])
        if request.method == "POST" and request.path.startswith(f"{base}/issues/") and request.path.endswith("/comments"):
            number = int(request.path.split("/")[-2])
            if number not in self.issues:
                return Reply(404, json={"message": "Not Found"})
            self.comments.setdefault(number, []).append(request.json["body"])
            return Reply(201, json={"id": 1})
        return Reply(404, json={"message": "Not Found"})

    def page(self, request: Request, items: list[dict[str, Any]]) -> Reply:
        """One page of a listing as GitHub answers it: `per_page` (30 unless asked, at most 100) items
        from `page`, and a `Link` header naming the next page while there is one (the REST API's
        pagination: docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api)."""
        per_page = min(int(request.query.get("per_page", ["30"])[0]), 100)
        number = int(request.query.get("page", ["1"])[0])
        headers = {}
        if number * per_page < len(items):
            query = {k: v[0] for k, v in request.query.items()} | {"page": str(number + 1), "per_page": str(per_page)}
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        return Reply(200, json=items[(number - 1) * per_page : number * per_page], headers=headers)

    def writes(self) -> list[Request]:
        return [r for r in self.stub.requests if r.method != "GET"]


@pytest.fixture
def github(http_stub: StubServer) -> FakeGitHub:  # noqa: F811 - the fixture
    return FakeGitHub(http_stub)


@pytest.fixture
def env(github: FakeGitHub, webhook: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:  # noqa: F811
    values = {
        "GITHUB_REPOSITORY": "org/repo",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": github.url,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_ACTIONS": "true",
        "ALERT_WEBHOOK_URL": webhook.url + "/services/T000/B000/alert-hook-path",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def write(tmp_path: Path, *lines: str, name: str = "findings.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def everything_written(github: FakeGitHub, webhook: StubServer, env: dict[str, str], out: str) -> str:  # noqa: F811
    summary = Path(env["GITHUB_STEP_SUMMARY"])
    return "\n".join(
        [r.body.decode() for r in github.stub.requests + webhook.requests]
        + [json.dumps(github.issues), json.dumps(github.comments), summary.read_text() if summary.exists() else "", out]
    )


def test_a_verified_finding_opens_one_issue_alerts_and_summarises(github, webhook, env, tmp_path, capsys) -> None:  # noqa: F811
    findings = write(tmp_path, finding(), finding(verified=False, file="docs/example.md"))

    assert quarantine.main(["open", "--findings", str(findings)]) == 1

    [issue] = github.issues.values()
    assert [label["name"] for label in issue["labels"]] == [quarantine.LABEL]
    assert issue["body"].startswith(quarantine.MARKER)
    assert "| AWS | `config/prod.env` | 4 | `fbc14303ffbf8fb1c2c1914e8dda7d0121633aca` |" in issue["body"]
    assert "docs/example.md" not in issue["body"]  # unverified: the scan's gate blocks it, no quarantine
    assert "Close this issue" in issue["body"] and "Rotate the credential" in issue["body"]
    assert "https://github.com/org/repo/actions/runs/4242" in issue["body"]
    assert github.labels == {quarantine.LABEL}

    [alert] = webhook.requests
    assert "[CRITICAL] Verified secret in org/repo: deploys quarantined" in alert.json["text"]
    assert "AWS in config/prod.env:4 at commit fbc14303ffbf" in alert.json["text"]
    assert "issue #1 opened: https://github.com/org/repo/issues/1" in alert.json["text"]

    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### Security quarantine" in summary
    assert "| AWS | `config/prod.env` | 4 | `fbc14303ffbf8fb1c2c1914e8dda7d0121633aca` |" in summary

    written = everything_written(github, webhook, env, "".join(capsys.readouterr()))
    for part in SECRET_PARTS:
        assert part not in written


def test_a_second_finding_comments_on_the_open_issue(github, webhook, env, tmp_path, capsys) -> None:  # noqa: F811
    assert quarantine.main(["open", "--findings", str(write(tmp_path, finding()))]) == 1
    later = write(tmp_path, finding(file="scripts/deploy.sh", line=9, commit="a" * 40, detector="Github"), name="later.jsonl")

    assert quarantine.main(["open", "--findings", str(later)]) == 1

    assert list(github.issues) == [1]
    [comment] = github.comments[1]
    assert comment.startswith(quarantine.MARKER)
    assert f"| Github | `scripts/deploy.sh` | 9 | `{'a' * 40}` |" in comment
    assert "issue #1 updated" in webhook.requests[-1].json["text"]
    # The label is created with the first issue only.
    assert [r.path for r in github.writes()] == [
        "/repos/org/repo/labels",
        "/repos/org/repo/issues",
        "/repos/org/repo/issues/1/comments",
    ]
    written = everything_written(github, webhook, env, "".join(capsys.readouterr()))
    for part in SECRET_PARTS:
        assert part not in written


def test_an_existing_label_is_fine_and_pull_requests_are_not_quarantine_issues(github, webhook, env, tmp_path) -> None:  # noqa: F811
    github.labels.add(quarantine.LABEL)
    github.add(pull_request=True)  # the issues endpoint also lists PRs carrying the label

    assert quarantine.main(["open", "--findings", str(write(tmp_path, finding()))]) == 1

    assert [i["number"] for i in github.issues.values() if "pull_request" not in i] == [2]
    assert github.comments == {}


def test_no_verified_finding_writes_nothing(github, webhook, env, tmp_path) -> None:  # noqa: F811
    assert quarantine.main(["open", "--findings", str(write(tmp_path, finding(verified=False)))]) == 0
    assert quarantine.main(["open", "--findings", str(write(tmp_path, name="empty.jsonl"))]) == 0
    assert github.stub.requests == [] and webhook.requests == []


def test_a_json_list_of_findings_is_read_too(tmp_path) -> None:
    path = tmp_path / "list.json"
    path.write_text(f"[{finding()}, {finding(verified=False)}]")
    [found] = quarantine.verified(quarantine.read_findings(path))
    assert (found.detector, found.file, found.line, found.commit) == ("AWS", "config/prod.env", 4, COMMIT)


def test_names_from_the_scan_cannot_break_the_markdown(tmp_path) -> None:
    [found] = quarantine.parse_findings(finding(file="a|b`c\n## injected", commit="not-a-commit", line=-1))
    assert found.row() == "| AWS | `a\\|b'c\\n## injected` | ? | `?` |"


def test_an_issue_that_lost_its_label_is_an_error_the_alert_still_goes(http_stub, webhook, env, tmp_path, capsys) -> None:  # noqa: F811
    github = FakeGitHub(http_stub, drop_labels=True)

    assert quarantine.main(["open", "--findings", str(write(tmp_path, finding()))]) == 1

    assert "could NOT be written" in webhook.requests[0].json["text"]
    assert "without the label" in capsys.readouterr().err
    assert len(github.issues) == 1


def test_the_alert_goes_even_when_github_refuses(github, webhook, env, tmp_path, monkeypatch, capsys) -> None:  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_not-the-right-token-000")

    assert quarantine.main(["open", "--findings", str(write(tmp_path, finding()))]) == 1

    assert "could NOT be written (GitHub API: GET /issues: HTTP 401)" in webhook.requests[0].json["text"]
    assert github.issues == {}


# --- the gate ----------------------------------------------------------------------------------


def test_deploy_is_refused_while_the_issue_is_open_and_proceeds_once_closed(github, env, capsys) -> None:
    number = github.add()

    assert quarantine.main(["check"]) == 1
    err = capsys.readouterr().err
    assert f"issue #{number} (https://github.com/org/repo/issues/{number})" in err
    assert "1. rotates the credential; 2. purges or accepts the history; 3. closes the issue" in err
    assert err.startswith("::error title=Deploys are quarantined::")
    assert "Deploy refused: security quarantine" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()

    github.issues[number]["state"] = "closed"
    assert quarantine.main(["check"]) == 0
    assert "deploys may run" in capsys.readouterr().out
    # Only reads: the gate never writes.
    assert github.writes() == []
    [query] = {tuple(sorted((k, v[0]) for k, v in r.query.items())) for r in github.stub.requests}
    assert dict(query)["labels"] == quarantine.LABEL and dict(query)["state"] == "open"


def test_the_gate_reads_every_page_and_counts_no_pull_request(github, env, capsys) -> None:
    # The issues endpoint lists pull requests too: 150 labelled PRs come before the one issue.
    for _ in range(150):
        github.add(pull_request=True)
    assert quarantine.main(["check"]) == 0  # pull requests are not quarantine issues
    number = github.add()
    assert quarantine.main(["check"]) == 1
    assert f"#{number}" in capsys.readouterr().err
    pages = [r for r in github.stub.requests if r.method == "GET" and r.path.endswith("/issues")]
    assert {r.query.get("page", ["1"])[0] for r in pages[-2:]} == {"1", "2"}


def test_a_next_page_elsewhere_is_not_followed(http_stub, env, capsys) -> None:  # noqa: F811
    # The token goes with every request: a Link to another host is refused, and the gate stays shut.
    http_stub.script(lambda request: Reply(200, json=[], headers={"Link": '<https://elsewhere.example/steal?page=2>; rel="next"'}))
    assert quarantine.main(["check"]) == 3
    assert "the next page is not on" in capsys.readouterr().err


def test_other_labels_and_pull_requests_do_not_quarantine(github, env) -> None:
    github.add(labels=("bug",))
    github.add(pull_request=True)
    assert quarantine.main(["check"]) == 0


@pytest.mark.parametrize("status", [401, 403, 500])
def test_the_gate_refuses_when_github_cannot_be_asked(http_stub, env, capsys, status: int) -> None:  # noqa: F811
    http_stub.script(Reply(status, json={"message": "no"}))
    assert quarantine.main(["check"]) == 3
    err = capsys.readouterr().err
    assert f"HTTP {status}" in err and "refusing to deploy" in err
    assert TOKEN not in err


def test_the_gate_refuses_when_github_is_unreachable(env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    assert quarantine.main(["check"]) == 3
    assert "refusing to deploy" in capsys.readouterr().err


# --- bad input: one line, exit 2, never a traceback ---------------------------------------------


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow.quarantine", *argv],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "env_change", "expected"),
    [
        (["check"], {"GITHUB_REPOSITORY": ""}, "GITHUB_REPOSITORY must be owner/name"),
        (["check"], {"GITHUB_REPOSITORY": "org/repo/../x"}, "GITHUB_REPOSITORY must be owner/name"),
        (["check"], {"GITHUB_TOKEN": ""}, "set GITHUB_TOKEN"),
        (["check"], {"GITHUB_API_URL": "file:///etc/passwd"}, "GITHUB_API_URL is not an http(s) URL"),
        (["open", "--findings", "MISSING"], {}, "cannot read the findings"),
        (["open", "--findings", "NOTJSON"], {}, "line 2 of the findings is not JSON"),
        (["open", "--findings", "NOTFINDING"], {}, "line 1: not a trufflehog finding"),
        (["open", "--findings", "BADLIST"], {}, "finding 1: a finding is a JSON object"),
        (["open", "--findings", "DEEP"], {}, "line 1 of the findings nests lists or objects deeper than 100 levels"),
        (["open", "--findings", "DEEPLIST"], {}, "the findings nests lists or objects deeper than 100 levels"),
        (["open", "--findings", "DEEPISH"], {}, "line 1 of the findings nests lists or objects deeper than 100 levels"),
        (["open"], {}, "the following arguments are required: --findings"),
        (["close"], {}, "invalid choice"),
    ],
    ids=["no-repo", "repo-path", "no-token", "api-scheme", "missing-file", "not-json", "not-a-finding", "bad-list",
         "deeply-nested", "deeply-nested-list", "nested-past-the-bound", "no-findings-flag", "unknown-command"],
)
def test_bad_input_is_one_line(tmp_path, http_stub, argv, env_change, expected) -> None:  # noqa: F811
    files = {
        "MISSING": tmp_path / "missing.jsonl",
        "NOTJSON": write(tmp_path, finding(), "{not json " + SECRET, name="notjson.jsonl"),
        "NOTFINDING": write(tmp_path, json.dumps({"Raw": SECRET}), name="notfinding.jsonl"),
        "BADLIST": write(tmp_path, json.dumps([SECRET]), name="badlist.json"),
        # Past Python's recursion limit (RecursionError, not JSONDecodeError), and past ours only.
        "DEEP": write(tmp_path, '{"DetectorName": ' + "[" * 100_000 + "]" * 100_000 + "}", name="deep.jsonl"),
        "DEEPLIST": write(tmp_path, "[" * 50_000 + "]" * 50_000, name="deep.json"),
        "DEEPISH": write(tmp_path, '{"ExtraData": ' + "[" * 150 + "]" * 150 + "}", name="deepish.jsonl"),
    }
    argv = [str(files.get(a, a)) for a in argv]
    env = {"GITHUB_REPOSITORY": "org/repo", "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": http_stub.url, **env_change}

    proc = run(*argv, env=env)

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stderr + proc.stdout
    assert http_stub.requests == []
