"""Serve what `wrangler pages deploy` uploaded to the Cloudflare stand-in, the way Pages serves it.

One loopback port per (project, branch), so each site is served at an origin's root as on
Pages (a Next.js export links `/_next/...` absolutely): the newest deployment of that branch,
looked up on every request, so a new deploy is live at once. Paths resolve like Pages: the file
itself, then `<path>.html`, then `<path>/index.html`; anything else is the export's `404.html`
with status 404.
"""

from __future__ import annotations

import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from sandbox.cloudflare_api import CloudflareStub, Deployment


def newest(stub: CloudflareStub, project: str, branch: str) -> Deployment | None:
    found = [d for d in list(stub.deployments.values()) if d.project == project and d.branch == branch]
    return max(found, key=lambda d: d.created_on) if found else None


def resolve(manifest: dict[str, str], path: str) -> tuple[str | None, int]:
    """The manifest entry a request path serves, and its status (200, or 404 with 404.html)."""
    path = "/" + unquote(path).lstrip("/")
    candidates = [path] if not path.endswith("/") else []
    candidates += [path.rstrip("/") + ".html", path.rstrip("/") + "/index.html"]
    for candidate in candidates:
        if candidate in manifest:
            return candidate, 200
    return ("/404.html" if "/404.html" in manifest else None), 404


class PagesSite:
    """Serves the newest deployment of one branch of one project on 127.0.0.1:`port`."""

    def __init__(self, stub: CloudflareStub, project: str, branch: str, *, port: int = 0):
        self.stub, self.project, self.branch = stub, project, branch
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> PagesSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._serve(with_body=True)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
                self._serve(with_body=False)

            def _serve(self, *, with_body: bool) -> None:
                deployment = newest(site.stub, site.project, site.branch)
                if deployment is None:
                    self._send(404, b"no deployment of this branch yet\n", "text/plain", with_body)
                    return
                entry, status = resolve(deployment.manifest, urlsplit(self.path).path)
                body = site.stub.assets.get(deployment.manifest[entry], b"") if entry else b"not found\n"
                kind = mimetypes.guess_type(entry or "")[0] or "application/octet-stream"
                self._send(status, body, kind, with_body)

            def _send(self, status: int, body: bytes, kind: str, with_body: bool) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass

        return Handler
