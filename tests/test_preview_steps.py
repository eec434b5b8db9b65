"""workflow.pr_comment and workflow.sweep_previews: the logic behind the preview and sweeper workflows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.preview_documents import preview_document
from workflow import plan_report, pr_comment, sweep_previews

OUTPUTS = {
    "siteUrl": "https://pr-12.www.example.com",
    "apiUrl": "https://abc.lambda-url.us-east-1.on.aws/",
    "pagesBranch": "pr-12",
    "dbSchema": "app_pr_12",
    "functionName": "webstack-preview-pr-12-api",
}


def test_comment_starts_with_the_marker_and_lists_urls_and_plan(recorded) -> None:
    document = preview_document(recorded("preview-pr-12"), {"api-function": "replace", "api-url": "update"})
    unchanged = document["changeSummary"]["same"]
    body = pr_comment.render(
        stack="preview-pr-12",
        outcome="success",
        outputs=OUTPUTS,
        plan=plan_report.analyse(document, "preview-pr-12"),
        sha="0123456789abcdef0123",
        run_url="https://github.com/org/repo/actions/runs/1",
    )
    assert body.splitlines()[0] == pr_comment.MARKER
    assert "### Preview `preview-pr-12`: deployed at 0123456789ab" in body
    assert "| Site | https://pr-12.www.example.com |" in body
    assert "| Database schema | `app_pr_12` |" in body
    assert f"**Plan:** 0 to create, 1 to update, 1 to replace, 0 to delete; {unchanged} unchanged." in body
    assert "| replace | `api-function` |" in body


def test_comment_after_a_failed_up_has_no_urls_but_the_plan(recorded) -> None:
    document = preview_document(recorded("preview-pr-12"), {})
    body = pr_comment.render(
        stack="preview-pr-12",
        outcome="failure",
        outputs=None,
        plan=plan_report.analyse(document),
    )
    assert "not deployed (`pulumi up`: failure)" in body
    assert "| Site |" not in body
    assert f"0 to delete; {document['changeSummary']['same']} unchanged" in body


def test_comment_cli_writes_a_multiline_step_output(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS), encoding="utf-8")
    github_output = tmp_path / "github_output"

    code = pr_comment.main(
        [
            "--stack", "preview-pr-12",
            "--plan", str(tmp_path / "missing-plan.json"),
            "--outputs", str(outputs),
            "--outcome", "success",
        ],
        environ={"GITHUB_OUTPUT": str(github_output)},
    )

    assert code == 0
    first, *rest = github_output.read_text(encoding="utf-8").splitlines()
    name, delimiter = first.split("<<")
    assert name == "body" and rest[-1] == delimiter
    assert rest[0] == pr_comment.MARKER
    assert any(line.startswith("**Plan:** not available") for line in rest)


def test_preview_prs_from_the_stack_names() -> None:
    names = ["prod", "preview", "preview-pr-7", "organization/webstack/preview-pr-12", "preview-pr-012", "preview-pr-3-old"]
    assert sweep_previews.preview_prs(names) == [7, 12]


def write_backend(root: Path, *names: str, extra: tuple[str, ...] = ()) -> str:
    """A file backend with a checkpoint per stack name (and other objects), as the CLI lays it out."""
    for key in [*(f".pulumi/stacks/webstack/{n}.json" for n in names), *extra]:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return f"file://{root}"


def test_the_stacks_are_listed_by_object_name_without_opening_one(tmp_path: Path) -> None:
    url = write_backend(
        tmp_path,
        "prod",
        "preview-pr-7",
        extra=(
            ".pulumi/stacks/webstack/preview-pr-7.json.bak",
            ".pulumi/stacks/webstack/preview-pr-9.json.gz",
            ".pulumi/stacks/webstack/preview-pr-7.pulumi-tags",
            ".pulumi/stacks/other/preview-pr-5.json",
            ".pulumi/history/webstack/preview-pr-8/x.history.json",
        ),
    )
    # What a checkpoint holds changes nothing: none is parsed (test_teardown_preview shows on S3
    # that none is even read: no GetObject).
    for path in (tmp_path / ".pulumi/stacks/webstack").iterdir():
        path.write_text("not a checkpoint")
    listed = [s.name for s in sweep_previews.stored_stacks({"PULUMI_BACKEND_URL": url})]
    assert listed == ["preview-pr-7", "preview-pr-9", "prod"]


def test_list_writes_the_stack_ls_shape(tmp_path: Path) -> None:
    url = write_backend(tmp_path / "backend", "prod", "preview-pr-7")
    out = tmp_path / "stacks.json"
    assert sweep_previews.main(["list", "--output", str(out)], environ={"PULUMI_BACKEND_URL": url}) == 0
    document = json.loads(out.read_text())
    assert [s["name"] for s in document] == ["preview-pr-7", "prod"]
    assert all(s["lastUpdate"].endswith("Z") for s in document)
    # The audit report reads exactly this shape.
    from workflow.audit import sources

    assert [s["name"] for s in sources.stacks(str(out))] == ["preview-pr-7", "prod"]


def test_a_backend_url_that_cannot_be_listed_is_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "stacks.json"
    assert sweep_previews.main(["list", "--output", str(out)], environ={"PULUMI_BACKEND_URL": "https://x"}) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not an S3 or file backend" in err


class FakeGitHub(BaseHTTPRequestHandler):
    states = {7: "closed", 12: "open"}

    def do_GET(self) -> None:  # noqa: N802
        if self.headers["Authorization"] != "Bearer t0ken":
            self.send_response(401)
            self.end_headers()
            return
        number = int(self.path.rsplit("/", 1)[-1])
        if self.path != f"/repos/org/repo/pulls/{number}" or number not in self.states:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"number": number, "state": self.states[number]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def github_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_find_outputs_only_closed_prs_and_reports_all(tmp_path: Path, github_api: str) -> None:
    env = {
        "GH_TOKEN": "t0ken",
        "GITHUB_API_URL": github_api,
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    env["PULUMI_BACKEND_URL"] = write_backend(tmp_path / "backend", "preview-pr-7", "preview-pr-12", "preview-pr-99", "prod")

    code = sweep_previews.main(["find", "--repo", "org/repo"], environ=env)

    assert code == 0
    assert (tmp_path / "out").read_text() == "prs=[7]\n"
    summary = (tmp_path / "summary").read_text()
    assert "| `preview-pr-7` | closed | destroy |" in summary
    assert "| `preview-pr-12` | open | keep |" in summary
    assert "| `preview-pr-99` | missing | keep" in summary


def test_check_says_whether_a_pr_is_still_closed(tmp_path: Path, github_api: str) -> None:
    out = tmp_path / "out"
    env = {"GH_TOKEN": "t0ken", "GITHUB_API_URL": github_api, "GITHUB_OUTPUT": str(out)}

    assert sweep_previews.main(["check", "--repo", "org/repo", "--pr", "7"], environ=env) == 0
    assert sweep_previews.main(["check", "--repo", "org/repo", "--pr", "12"], environ=env) == 0
    assert out.read_text() == "closed=true\nclosed=false\n"


def test_sweeper_fails_without_a_token_or_on_api_errors(github_api: str) -> None:
    assert sweep_previews.main(["check", "--repo", "org/repo", "--pr", "7"], environ={}) == 2
    env = {"GH_TOKEN": "wrong", "GITHUB_API_URL": github_api}
    # HTTP 401 is an error, never read as "closed".
    assert sweep_previews.main(["check", "--repo", "org/repo", "--pr", "7"], environ=env) == 1
