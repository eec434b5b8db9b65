"""Cloudflare's edge for the local cloud's zone: `https://<host>/` of a deployed site, reachable from
a workflow's job as it is from a GitHub runner.

A preview's site is `https://pr-N.<siteSubdomain>.<zone>/`, one host per PR, all on one shared
stack file (Pulumi.preview.yaml), so a site URL cannot be written down per stack; on GitHub the
runner simply resolves the host and reaches Cloudflare. Here nothing resolves `<zone>` and no
loopback port may be 443, so the runner machine reaches the zone through this HTTPS proxy
(`HTTPS_PROXY`/`HTTP_PROXY`, with `NO_PROXY` for loopback), exactly as a client behind a
corporate proxy reaches the internet:

- `CONNECT host:443` for a host the Cloudflare stand-in has a DNS record for (a CNAME to
  `<branch>.<project>.pages.dev` or `<project>.pages.dev`), or a `*.pages.dev` host itself: the
  proxy answers TLS for the host with a certificate of its own local CA (`ca_file`, trusted
  through REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS, a bundle of the machine's roots plus that CA)
  and serves the requests from the newest deployment of that branch (sandbox/pages_sites.py, as
  the cloud serves each branch). A zone host with no record fails the CONNECT (502), as a name
  that does not resolve yet fails: the site check's retries treat both as not-yet-propagated.
- a plain `http://` request for such a host is redirected to its `https://` URL (301), as Pages
  always redirects HTTP to HTTPS.
- every other host is refused (403, and kept in `refused`): the edge is no open proxy, and the
  runner's jobs need nothing beyond the zone. pip and npm install offline, from what .ci/setup
  prepared (sandbox/runner_packages.py), so CI does not depend on PyPI or npm. (A client that
  ignores the proxy variables is not stopped by this: the edge is a resolver for the zone, not a
  firewall.)

What it does not reproduce: a custom domain's activation (Cloudflare serves a host on a Pages
project only once the project lists it as a domain; here the DNS record alone routes it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import certifi
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.names import PAGES_PRODUCTION_BRANCH

PAGES_SUFFIX = ".pages.dev"
MAX_HEAD = 64 * 1024


def _system_roots() -> Path:
    """The roots this machine trusts (its own CAs included, e.g. an egress proxy's), else certifi's:
    a bundle that replaces them for a client must keep every one of them."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return Path(certifi.where())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class _Authority:
    """A throwaway CA and the leaf certificates it signs per host."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("webstack local Cloudflare edge CA"))
            .issuer_name(_name("webstack local Cloudflare edge CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)  # fmt: skip
            .sign(self.key, hashes.SHA256())
        )
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="pages-edge-"))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def context(self, host: str) -> ssl.SSLContext:
        with self._lock:
            if host not in self._contexts:
                key = ec.generate_private_key(ec.SECP256R1())
                now = dt.datetime.now(dt.UTC)
                leaf = (
                    x509.CertificateBuilder()
                    .subject_name(_name(host))
                    .issuer_name(self.cert.subject)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(minutes=5))
                    .not_valid_after(now + dt.timedelta(days=1))
                    .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                    .sign(self.key, hashes.SHA256())
                )
                chain = self._dir / f"{host}.pem"
                chain.write_bytes(
                    leaf.public_bytes(serialization.Encoding.PEM)
                    + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                )
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(chain)
                self._contexts[host] = context
            return self._contexts[host]


class PagesEdge:
    """The proxy; a context manager. `route(host)` -> (project, branch) or None; `site(project,
    branch)` -> the loopback URL that branch is served at."""

    def __init__(self, route: Callable[[str], tuple[str, str] | None], site: Callable[[str, str], str], *,
                 zone: str, directory: Path, production_branch: str = PAGES_PRODUCTION_BRANCH) -> None:  # fmt: skip
        self.route = route
        self.site = site
        self.zone = zone
        self.production_branch = production_branch
        self.refused: list[str] = []
        """Every target refused (CONNECT host:port, or http://host), in order."""
        self._authority = _Authority()
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "edge-ca.pem"
        self.ca_file.write_bytes(self._authority.pem())
        self.bundle_file = directory / "ca-bundle.pem"
        self.bundle_file.write_bytes(_system_roots().read_bytes() + b"\n" + self._authority.pem())
        edge = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                    edge._handle(self.connection, self.rfile)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def environment(self) -> dict[str, str]:
        """What a runner machine behind this edge has in its environment."""
        return {
            "HTTPS_PROXY": self.url, "https_proxy": self.url, "HTTP_PROXY": self.url, "http_proxy": self.url,
            "NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1",
            "REQUESTS_CA_BUNDLE": str(self.bundle_file), "NODE_EXTRA_CA_CERTS": str(self.bundle_file),
        }  # fmt: skip

    def __enter__(self) -> PagesEdge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- one client connection ------------------------------------------------------------------
    def _pages_target(self, host: str) -> tuple[str, str] | None:
        if host.endswith(PAGES_SUFFIX):
            labels = host.removesuffix(PAGES_SUFFIX).split(".")
            if len(labels) == 1:
                return labels[0], self.production_branch
            if len(labels) == 2:
                return labels[1], labels[0]
            return None
        return self.route(host)

    def _ours(self, host: str) -> bool:
        return host.endswith(PAGES_SUFFIX) or host == self.zone or host.endswith(f".{self.zone}")

    def _refuse(self, client: socket.socket, target: str) -> None:
        self.refused.append(target)
        body = (f"the local Cloudflare edge serves {self.zone} and *{PAGES_SUFFIX} only, not {target}: "
                "the runner's jobs install offline (sandbox/runner_packages.py)\n").encode()  # fmt: skip
        client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    def _handle(self, client: socket.socket, reader) -> None:  # noqa: ANN001 - the handler's buffered reader
        head = reader.readline(MAX_HEAD).decode("latin-1")
        method, target, _ = (head.split(" ", 2) + ["", ""])[:3]
        self._read_headers(reader)  # read to the blank line; none of them changes the answer
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            if not self._ours(host):
                self._refuse(client, target)
                return
            pages = self._pages_target(host) if port == "443" else None
            if pages is None:  # a name of the zone that does not resolve (yet)
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tls = self._authority.context(host).wrap_socket(client, server_side=True)
            self._serve(tls, pages)
            return
        # A plain http:// request through the proxy: Pages answers it with its https:// URL.
        rest = target.removeprefix("http://") if target.startswith("http://") else ""
        host, _, path = rest.partition("/")
        if not host:
            client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        if not self._ours(host.partition(":")[0]):
            self._refuse(client, f"http://{host}")
            return
        location = f"https://{host.partition(':')[0]}/{path}"
        client.sendall(f"HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode("latin-1"))

    @staticmethod
    def _read_headers(reader) -> list[tuple[str, str]]:  # noqa: ANN001
        headers = []
        while True:
            line = reader.readline(MAX_HEAD).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                return headers
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))

    def _serve(self, tls: ssl.SSLSocket, pages: tuple[str, str]) -> None:
        """HTTP/1.1 requests inside the tunnel, answered from the branch's site."""
        base = self.site(*pages).rstrip("/")
        reader = tls.makefile("rb")
        while True:
            head = reader.readline(MAX_HEAD).decode("latin-1")
            if not head.strip():
                return
            method, path, _ = (head.split(" ", 2) + ["", ""])[:3]
            headers = dict(self._read_headers(reader))
            length = int(headers.get("Content-Length") or 0)
            body = reader.read(length) if length else b""
            answer = requests.request(method, f"{base}{path}", data=body or None, timeout=30, allow_redirects=False,
                                      headers={k: v for k, v in headers.items() if k.lower() not in ("host", "connection")})  # fmt: skip
            payload = answer.content if method != "HEAD" else b""
            lines = [f"HTTP/1.1 {answer.status_code} {answer.reason}"]
            lines += [f"{k}: {v}" for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")]
            lines += [f"Content-Length: {len(answer.content)}", "Server: cloudflare", "", ""]
            tls.sendall("\r\n".join(lines).encode("latin-1") + payload)
            if headers.get("Connection", "").lower() == "close":
                return
