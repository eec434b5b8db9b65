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
# GitHub's largest page, and how many pages a listing may take (10 000 items) before it is refused.
PER_PAGE = 100
MAX_PAGES = 100


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
        return self._send(method, f"{self.api_url.rstrip('/')}/repos/{self.repo}{path}", path, params, body, expect)

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        expect: tuple[int, ...],
    ) -> requests.Response:
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

    def listing(self, path: str, params: Mapping[str, str | int] | None = None) -> list[Any]:
        """Every item of a GET listing, page after page: GitHub answers one page (at most 100) and
        names the next in `Link: <url>; rel="next"`. A next page elsewhere than this API is refused
        (the token goes with every request)."""
        items: list[Any] = []
        url = f"{self.api_url.rstrip('/')}/repos/{self.repo}{path}"
        query: Mapping[str, str | int] | None = {**(params or {}), "per_page": PER_PAGE}
        for _ in range(MAX_PAGES):
            response = self._send("GET", url, path, query, None, (200,))
            try:
                page = response.json()
            except ValueError as exc:
                raise GitHubError(f"GitHub API: GET {path}: the answer is not JSON") from exc
            if not isinstance(page, list):
                raise GitHubError(f"GitHub API: GET {path}: the answer is not a list")
            items += page
            following = response.links.get("next", {}).get("url")
            if not following:
                return items
            if not following.startswith(f"{self.api_url.rstrip('/')}/"):
                raise GitHubError(f"GitHub API: GET {path}: the next page is not on {self.api_url}")
            url, query = following, None  # the next page's URL carries the query
        raise GitHubError(f"GitHub API: GET {path}: more than {MAX_PAGES} pages")

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
