"""Dashboard sessions: sign-in with an API token, a signed cookie, CSRF tokens.

The cookie holds the token's SHA-256 (what the store keys tokens by, never the token),
its name, a random nonce and the time of sign-in, signed with HMAC-SHA256 under a key
kept in the data folder (mode 0600), so sessions survive a restart and every replica
that shares the folder accepts them. Each request looks the token up again: a revoked
or expired token ends its sessions at once. The cookie is HttpOnly, SameSite=Strict,
and Secure when the dashboard is served over TLS.

CSRF: every state-changing request carries a token derived from the session's nonce
(HMAC under the same key), in a form field or the X-CSRF-Token header; SameSite=Strict
already keeps other sites' requests from carrying the cookie, this is the second lock.
The sign-in form has its own double-submit nonce, so no other page can sign a browser
in with a token of its choosing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from appflow.model.records import TokenRecord, utc_now
from appflow.store import Store

COOKIE = "appflow_session"
LOGIN_COOKIE = "appflow_login"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600
"""A session ends 12 hours after sign-in (a shift), whatever the token allows."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, kw_only=True)
class Session:
    """A signed-in browser: whose token, and the nonce its CSRF token derives from."""

    token_hash: str
    nonce: str
    issued: float
    token: TokenRecord | None = None
    """The token as the store has it now (filled in by ``Sessions.check``)."""

    @property
    def name(self) -> str:
        return self.token.name if self.token else "?"

    @property
    def read_only(self) -> bool:
        return self.token is None or self.token.read_only


class SessionEnded(Exception):
    """The session's token was revoked or expired, or the session is too old."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Sessions:
    """Issues and checks session cookies and CSRF tokens with one key."""

    def __init__(self, key: bytes, *, lifetime: float = SESSION_SECONDS) -> None:
        self._key = key
        self.lifetime = lifetime

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest())

    def issue(self, token_hash: str, *, now: float | None = None) -> str:
        """The cookie value of a new session of the token with TOKEN_HASH."""
        payload = json.dumps(
            {"h": token_hash, "n": secrets.token_urlsafe(16), "t": now or time.time()},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session COOKIE holds, or None when it is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.partition(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(payload)
            session = Session(
                token_hash=str(data["h"]), nonce=str(data["n"]), issued=float(data["t"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        if (now or time.time()) - session.issued > self.lifetime:
            return None
        return session

    def check(self, store: Store, session: Session) -> Session:
        """SESSION with its token as the store has it now; SessionEnded when it is gone."""
        token = store.use_token(session.token_hash)
        if token is None or token.expired(utc_now()):
            raise SessionEnded(
                "your token was revoked or has expired: sign in again with a valid token"
            )
        return Session(
            token_hash=session.token_hash, nonce=session.nonce, issued=session.issued, token=token
        )

    def csrf(self, session: Session) -> str:
        """The CSRF token of SESSION's pages and requests."""
        return self._sign(f"csrf.{session.nonce}".encode())

    def csrf_ok(self, session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf(session))

    def login_nonce(self) -> str:
        return secrets.token_urlsafe(16)
