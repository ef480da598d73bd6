"""API bearer tokens (`appflow token`): made, listed and revoked.

A token is random text shown once; the store keeps only its SHA-256, so a copy of the
store grants no API access. Read-only tokens may read the API and the dashboard and
change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from appflow.model.records import TokenRecord, utc_now
from appflow.model.tokens import hash_token, new_token
from appflow.store import Store


@dataclass(frozen=True, kw_only=True)
class NewToken:
    """A token just made: its record, and the token itself (never kept, shown once)."""

    record: TokenRecord
    secret: str


def create_token(
    store: Store, *, name: str, read_only: bool = False, ttl: timedelta | None = None
) -> NewToken:
    """Make API token NAME, valid for TTL (None: until revoked)."""
    secret = new_token()
    record = store.add_token(
        name,
        token_hash=hash_token(secret),
        scope="read-only" if read_only else "admin",
        expires_at=utc_now() + ttl if ttl is not None else None,
    )
    return NewToken(record=record, secret=secret)


def revoke_token(store: Store, *, name: str) -> None:
    """Revoke API token NAME: requests carrying it are refused from now on."""
    store.delete_token(name)
