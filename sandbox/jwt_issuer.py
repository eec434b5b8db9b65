"""A loopback JWT issuer: an RS256 key, its JWKS, and tokens the deployed API accepts.

    with JwtIssuer(audience="webstack-api") as issuer:     # start() / stop()
        env = {"JWKS_URL": issuer.jwks_url, "JWT_ISSUER": issuer.issuer, "JWT_AUDIENCE": "webstack-api"}
        token = issuer.token(sub="demo-user")             # audience/ttl/extra claims optional

    python -m sandbox.jwt_issuer --port 8605 --audience webstack-api     # serve (foreground)
    python -m sandbox.jwt_issuer token --url http://127.0.0.1:8605 [--sub demo-user]

Routes, on 127.0.0.1 only:
    GET  /.well-known/jwks.json              {"keys": [public RSA JWK: kty, n, e, kid, alg, use]}
    GET  /.well-known/openid-configuration   {"issuer", "jwks_uri", "token_endpoint", ...}
    POST /token   {"sub"?, "audience"?, "ttl"?, "claims"?}  ->  {"access_token", "token_type", "expires_in"}

`issuer` (the `iss` of every token, and what JWT_ISSUER must be) is the server's URL unless one
is given. Tokens carry iss, sub, aud, iat, nbf, exp, jti and are signed with the `kid` of the key:
its RFC 7638 thumbprint, so a restarted issuer (a new key, unless `key_file` keeps one) has a new
kid and `jose`'s createRemoteJWKSet, which refetches the set only for an unknown kid, picks it up.
`key_file` (PEM, created 0600 when missing) keeps the key, and so the tokens, across restarts.

The signature is plain RS256 (RSASSA-PKCS1-v1_5 with SHA-256) from `cryptography`; the API
verifies it with its own `jose` (tests/test_lambda_runtime.py proves that with the real bundle).
Anyone who can reach the port can mint tokens: that is the point of a sandbox issuer, and why it
binds to loopback only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.http_server import Reply, Request, StubServer

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
TOKEN_PATH = "/token"  # nosec B105 - a route, not a secret
DEFAULT_AUDIENCE = "webstack-api"
DEFAULT_SUBJECT = "demo-user"
DEFAULT_TTL = 3600
KEPT_REQUESTS = 100  # a long-lived issuer keeps only the latest request records


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def load_or_create_key(key_file: Path | None) -> rsa.RSAPrivateKey:
    """The key in `key_file` (PEM), or a new 2048-bit one (written there, 0600, when a path is given)."""
    if key_file is not None and key_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{key_file} does not hold an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_file is not None:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    return key


class JwtIssuer:
    """The issuer server; a context manager. `port=0` takes any free port."""

    def __init__(self, port: int = 0, *, audience: str = DEFAULT_AUDIENCE, issuer: str | None = None,
                 key_file: str | Path | None = None) -> None:  # fmt: skip
        self.audience = audience
        self._issuer = issuer
        self._key = load_or_create_key(Path(key_file) if key_file else None)
        numbers = self._key.public_key().public_numbers()
        n, e = b64url(_uint(numbers.n)), b64url(_uint(numbers.e))
        # RFC 7638: the SHA-256 of the required members in lexicographic order, no whitespace.
        self.kid = b64url(hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode()).digest())
        self.jwk = {"kty": "RSA", "n": n, "e": e, "kid": self.kid, "alg": "RS256", "use": "sig"}
        self._server = StubServer(port=port)
        self._server.route("GET", JWKS_PATH, self._jwks_endpoint)
        self._server.route("GET", DISCOVERY_PATH, self._discovery_endpoint)
        self._server.route("POST", TOKEN_PATH, self._token_endpoint)
        self._started = False

    # lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    @property
    def issuer(self) -> str:
        """The `iss` of every token (what the API's JWT_ISSUER must be)."""
        return self._issuer or self.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}{JWKS_PATH}"

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    def start(self) -> JwtIssuer:
        if not self._started:
            self._server.__enter__()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.__exit__(None, None, None)
            self._started = False

    def __enter__(self) -> JwtIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # tokens ------------------------------------------------------------------------------------
    def token(self, sub: str = DEFAULT_SUBJECT, audience: str | list[str] | None = None, ttl: int = DEFAULT_TTL,
              **claims: Any) -> str:  # fmt: skip
        """A signed RS256 JWT for `sub`; `claims` are added (and may override the standard ones)."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience if audience is not None else self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": secrets.token_hex(8),
            **claims,
        }
        return self.sign(payload)

    def sign(self, payload: dict[str, Any]) -> str:
        """`payload` exactly as given, signed (tests make expired or foreign tokens with it)."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload))
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "token_endpoint": self.token_url,
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _forget_old_requests(self) -> None:
        del self._server.requests[:-KEPT_REQUESTS]

    def _jwks_endpoint(self, _: Request) -> Reply:
        self._forget_old_requests()
        return Reply(200, json={"keys": [self.jwk]}, headers={"Cache-Control": "max-age=300"})

    def _discovery_endpoint(self, _: Request) -> Reply:
        self._forget_old_requests()
        return Reply(200, json=self.discovery())

    def _token_endpoint(self, request: Request) -> Reply:
        self._forget_old_requests()
        try:
            spec = request.json or {}
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            ttl = int(spec.get("ttl", DEFAULT_TTL))
            claims = spec.get("claims") or {}
            if not isinstance(claims, dict):
                raise ValueError("claims must be an object")
            token = self.token(sub=str(spec.get("sub") or DEFAULT_SUBJECT), audience=spec.get("audience"), ttl=ttl, **claims)
        except (ValueError, TypeError) as exc:
            return Reply(400, json={"error": "invalid_request", "error_description": str(exc)})
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": ttl}  # nosec B105 - the OAuth type name
        return Reply(200, json=answer)


# ----------------------------------------------------------------------------------------- CLI
def _serve(args: argparse.Namespace) -> int:
    try:
        issuer = JwtIssuer(args.port, audience=args.audience, issuer=args.issuer, key_file=args.key_file).start()
    except OSError as exc:
        print(f"jwt_issuer: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"JWKS_URL={issuer.jwks_url}", f"JWT_ISSUER={issuer.issuer}", f"JWT_AUDIENCE={issuer.audience}",
          f"TOKEN_URL={issuer.token_url}", sep="\n", flush=True)  # fmt: skip
    try:
        while not stop.wait(1.0):
            pass
    finally:
        issuer.stop()
    return 0


def _token(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"sub": args.sub, "ttl": args.ttl}
    if args.audience:
        body["audience"] = args.audience
    try:
        answer = requests.post(f"{args.url.rstrip('/')}{TOKEN_PATH}", json=body, timeout=10)
        answer.raise_for_status()
    except requests.RequestException as exc:
        print(f"jwt_issuer: no token from {args.url}: {exc}", file=sys.stderr)
        return 1
    print(answer.json()["access_token"])
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:
        parser = argparse.ArgumentParser(prog="python -m sandbox.jwt_issuer token", description="Ask a running issuer for a token.")
        parser.add_argument("--url", required=True, help="the issuer's base URL")
        parser.add_argument("--sub", default=DEFAULT_SUBJECT)
        parser.add_argument("--audience", help="default: the issuer's audience")
        parser.add_argument("--ttl", type=int, default=DEFAULT_TTL)
        return _token(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m sandbox.jwt_issuer", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--audience", default=DEFAULT_AUDIENCE)
    parser.add_argument("--issuer", help="the `iss` (default: the server's URL)")
    parser.add_argument("--key-file", help="PEM private key kept across restarts (created when missing)")
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
