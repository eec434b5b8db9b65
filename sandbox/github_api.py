"""A loopback stand-in for the few GitHub REST endpoints the audit report reads (workflow/audit).

    GET /repos/:owner/:repo/actions/runs            ?created=>=ISO&per_page=&page= ; {"total_count", "workflow_runs"}
    GET /repos/:owner/:repo/actions/runs/:id        one run (404 {"message": "Not Found"})
    GET /repos/:owner/:repo/actions/runs/:id/jobs   {"total_count", "jobs": [{name, conclusion, steps: [...]}]}
    GET /repos/:owner/:repo/pulls/:number           {number, state, closed_at, merged_at, ...}

Answers carry the fields of the real API that the report reads (id, name, path, event,
head_branch, head_sha, status, conclusion, created_at, run_started_at, updated_at, html_url,
run_attempt, actor.login, pull_requests[].number), newest run first, paged as GitHub pages
(`per_page` at most 100). A request without `Authorization: Bearer <token>` gets 401.
`add_run(...)`, `add_pr(...)` plant what the repository's history would hold.
"""

from __future__ import annotations

import itertools
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.http_server import Reply, Request, StandIn

TOKEN = "ghs_stubtoken0123456789"
_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
_RUNS = re.compile(rf"^{_REPO}/actions/runs/?$")
_RUN = re.compile(rf"^{_REPO}/actions/runs/(?P<id>\d+)(?P<jobs>/jobs)?/?$")
_PULL = re.compile(rf"^{_REPO}/pulls/(?P<number>\d+)/?$")


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubStub(StandIn):
    """Runs, their jobs and pull requests of one repository; a context manager."""

    def __init__(self, *, repo: str = "org/repo", token: str = TOKEN, port: int = 0):
        self.repo = repo
        self.token = token
        self.runs: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, list[dict[str, Any]]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(9000)
        self._lock = threading.Lock()
        super().__init__(port=port)

    def add_run(
        self,
        workflow: str,
        *,
        conclusion: str = "success",
        event: str = "push",
        branch: str = "main",
        sha: str = "0" * 40,
        actor: str = "octocat",
        started: datetime | None = None,
        minutes: float = 5,
        pr: int | None = None,
        failed_step: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """A completed run of `.github/workflows/<workflow>.yml`; `failed_step` = (job, step) that failed."""
        started = started or datetime.now(UTC) - timedelta(hours=1)
        run_id = next(self._ids)
        run = {
            "id": run_id,
            "name": workflow,
            "path": f".github/workflows/{workflow}.yml",
            "event": event,
            "head_branch": branch,
            "head_sha": sha,
            "status": "completed",
            "conclusion": conclusion,
            "run_attempt": 1,
            "created_at": iso(started),
            "run_started_at": iso(started),
            "updated_at": iso(started + timedelta(minutes=minutes)),
            "html_url": f"https://github.com/{self.repo}/actions/runs/{run_id}",
            "actor": {"login": actor},
            "triggering_actor": {"login": actor},
            "pull_requests": [{"number": pr}] if pr else [],
        }
        job_name, step_name = failed_step or (workflow, "")
        steps = [{"name": "Set up job", "number": 1, "status": "completed", "conclusion": "success"}]
        if failed_step:
            steps.append({"name": step_name, "number": 2, "status": "completed", "conclusion": "failure"})
        with self._lock:
            self.runs[run_id] = run
            self.jobs[run_id] = [
                {"id": run_id * 10, "run_id": run_id, "name": job_name, "status": "completed",
                 "conclusion": "failure" if failed_step else conclusion, "steps": steps}
            ]  # fmt: skip
        return run

    def add_pr(self, number: int, *, state: str = "open", closed: datetime | None = None) -> dict[str, Any]:
        pull = {
            "number": number,
            "state": state,
            "closed_at": iso(closed) if closed else None,
            "merged_at": None,
            "html_url": f"https://github.com/{self.repo}/pull/{number}",
            "title": f"PR {number}",
        }
        with self._lock:
            self.pulls[number] = pull
        return pull

    def _answer(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, json={"message": "Bad credentials", "status": "401"})
        if request.method != "GET":
            return Reply(404, json={"message": "Not Found", "status": "404"})
        path = request.path
        with self._lock:
            if (m := _RUNS.match(path)) and m["repo"] == self.repo:
                return self._list_runs(request)
            if (m := _RUN.match(path)) and m["repo"] == self.repo and int(m["id"]) in self.runs:
                run_id = int(m["id"])
                if m["jobs"]:
                    jobs = self.jobs.get(run_id, [])
                    return Reply(200, json={"total_count": len(jobs), "jobs": jobs})
                return Reply(200, json=self.runs[run_id])
            if (m := _PULL.match(path)) and m["repo"] == self.repo and int(m["number"]) in self.pulls:
                return Reply(200, json=self.pulls[int(m["number"])])
        return Reply(404, json={"message": "Not Found", "status": "404"})

    def _list_runs(self, request: Request) -> Reply:
        def arg(key: str, default: str = "") -> str:
            return (request.query.get(key) or [default])[0]

        runs = sorted(self.runs.values(), key=lambda r: r["created_at"], reverse=True)
        created = arg("created")
        if created.startswith(">="):
            runs = [r for r in runs if r["created_at"] >= created[2:]]
        per_page = min(int(arg("per_page", "30")), 100)
        page = int(arg("page", "1"))
        chunk = runs[(page - 1) * per_page : page * per_page]
        return Reply(200, json={"total_count": len(runs), "workflow_runs": chunk})
