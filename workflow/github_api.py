"""The GitHub REST client of the workflow scripts (the sweeper, the quarantine): one place for the
token, the API URL, the headers and the timeout.

`GitHub(repo, token, api_url)` sends with the workflow token (`Authorization: Bearer`), the REST
media type and API version. Every answer that is not the one expected raises `GitHubError` with
the method, the path and the status: never a traceback, never the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_API = "https://api.github.com"
# owner/name as GitHub allows them (it is part of an API path).
REPOSITORY = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}")
TIMEOUT_SECONDS = 30


class GitHubError(RuntimeError):
    pass


@dataclass(frozen=True)
class GitHub:
    repo: str
    token: str
    api_url: str = DEFAULT_API

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """`method` on `/repos/{repo}{path}`; an answer outside `expect` raises GitHubError."""
        url = f"{self.api_url.rstrip('/')}/repos/{self.repo}{path}"
        try:
            response = requests.request(
                method,
                url,
                params=params,
                json=body,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28",
                },
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise GitHubError(f"GitHub API: {method} {path}: {type(exc).__name__}") from exc
        if response.status_code not in expect:
            raise GitHubError(f"GitHub API: {method} {path}: HTTP {response.status_code}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise GitHubError(f"GitHub API: {method} {path}: the answer is not JSON") from exc

    def pr_state(self, number: int) -> str:
        """`open`, `closed` or `missing` (no such PR: the stack is left alone, not guessed at)."""
        response = self.request("GET", f"/pulls/{number}", expect=(200, 404))
        if response.status_code == 404:
            return "missing"
        try:
            state = response.json().get("state")
        except (ValueError, AttributeError):
            state = None
        if state not in ("open", "closed"):
            raise GitHubError(f"GitHub API: PR #{number}: unexpected state {state!r}")
        return str(state)
