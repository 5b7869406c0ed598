"""Bearer-token access for the HTTP transport.

Tokens come from the environment (`COACHLOOP_TOKENS`, comma separated), a tokens file
(`--tokens-file` or `COACHLOOP_TOKENS_FILE`: one token per line, `#` comments), or both. Each
token is hashed (sha256) as soon as it is read and only the hash is kept; a line or entry of the
form `sha256:<64 hex>` is taken as an already-hashed token, so a tokens file need never hold a
secret in clear (`coachloop serve --hash-token TOKEN` prints the line). A presented token is
hashed and compared with every stored hash in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from pathlib import Path
from typing import Iterable

TOKENS_ENV = "COACHLOOP_TOKENS"
TOKENS_FILE_ENV = "COACHLOOP_TOKENS_FILE"
_HASHED = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
PUBLIC_PATHS = frozenset({"/healthz"})


class AuthConfigError(ValueError):
    """The token configuration cannot be used (unreadable file, no tokens, ...)."""


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenSet:
    """A set of hashed bearer tokens."""

    def __init__(self, hashes: Iterable[str] = ()):
        self._digests: list[bytes] = [bytes.fromhex(h.split(":", 1)[1]) for h in hashes]

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, entry: str) -> None:
        entry = entry.strip()
        if not entry:
            return
        m = _HASHED.match(entry)
        self._digests.append(bytes.fromhex(m.group(1)) if m else hashlib.sha256(entry.encode("utf-8")).digest())

    def check(self, presented: str | None) -> bool:
        if not presented:
            return False
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        ok = False
        for d in self._digests:  # no early exit: the time does not depend on which token matched
            ok |= hmac.compare_digest(d, digest)
        return ok

    @classmethod
    def load(cls, tokens_file: str | Path | None = None, environ: dict | None = None) -> "TokenSet":
        env = os.environ if environ is None else environ
        ts = cls()
        for part in (env.get(TOKENS_ENV) or "").split(","):
            ts.add(part)
        path = tokens_file or env.get(TOKENS_FILE_ENV)
        if path:
            p = Path(path).expanduser()
            try:
                text = p.read_text(encoding="utf-8")
            except OSError as exc:
                raise AuthConfigError(f"cannot read the tokens file {p}: {exc.strerror or exc}") from None
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    ts.add(line)
        return ts


def bearer_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k.lower() == b"authorization":
            val = v.decode("latin-1").strip()
            if val[:7].lower() == "bearer ":
                return val[7:].strip()
            return None
    return None


class BearerAuthMiddleware:
    """ASGI middleware: every HTTP request except PUBLIC_PATHS needs a valid bearer token."""

    def __init__(self, app, tokens: TokenSet):
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        token = bearer_of(scope.get("headers") or [])
        if token is None:
            return await _deny(send, "missing_token", "this server needs a bearer token: send 'Authorization: Bearer <token>' (tokens are configured with COACHLOOP_TOKENS or a tokens file)")
        if not self.tokens.check(token):
            return await _deny(send, "invalid_token", "the bearer token is not valid for this server")
        return await self.app(scope, receive, send)


async def _deny(send, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", f'Bearer realm="coachloop", error="{code}"'.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
