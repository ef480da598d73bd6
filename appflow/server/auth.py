"""Who a request comes from: an API token, as a bearer header (API) or behind a session
cookie (dashboard). Tokens are looked up by their SHA-256 (see appflow.model.tokens)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from appflow.errors import AuthError
from appflow.model.records import TokenRecord, utc_now
from appflow.model.tokens import hash_token, looks_like_token
from appflow.server.service import ANONYMOUS, Actor
from appflow.store import Store


def find_token(store: Store, text: str) -> TokenRecord | None:
    """The live token TEXT is, or None (malformed, revoked, expired, never issued)."""
    try:
        return checked_token(store, text)
    except AuthError:
        return None


def checked_token(store: Store, text: str) -> TokenRecord:
    """The live token TEXT is; AuthError saying why not (unknown or expired)."""
    text = text.strip()
    # Shape first: a malformed token never reaches the store.
    token = store.use_token(hash_token(text)) if looks_like_token(text) else None
    if token is None:
        raise _unauthorized("the bearer token is not valid (revoked, or never issued)")
    if token.expired(utc_now()):
        assert token.expires_at is not None  # expired() says so
        raise AuthError(
            f"the bearer token {token.name!r} expired at "
            f"{token.expires_at.isoformat(timespec='seconds')}",
            hint="create a new one: appflow token create NAME --ttl DURATION",
        )
    return token


def actor_of(request: Request) -> Actor:
    """The caller the authentication dependency recorded for REQUEST (anonymous without)."""
    actor = getattr(request.state, "actor", None)
    return actor if isinstance(actor, Actor) else ANONYMOUS


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `appflow token create NAME`.",
)


def _unauthorized(message: str) -> AuthError:
    return AuthError(message, hint="send Authorization: Bearer TOKEN (`appflow token create`)")


def bearer_authorization(store: Store) -> Callable[..., None]:
    """The dependency of the API's routes: a live bearer token, recorded as the caller."""

    def authorize(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        if credentials is None:
            raise _unauthorized("this API needs a bearer token")
        request.state.actor = Actor.of(checked_token(store, credentials.credentials))

    return authorize
