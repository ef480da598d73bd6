"""API bearer tokens: how they look and how they are kept.

A token is ``af_`` and 32 URL-safe random characters (192 bits), shown once when it is
created. The store keeps only its SHA-256: a copy of the store grants nothing. A plain
hash (no salt, no slow KDF) is enough because the token is random, not a password, and
it lets the server find a token by its hash with an index lookup.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "af_"
TOKEN_RANDOM_BYTES = 24
"""24 random bytes are 32 URL-safe base64 characters."""


def new_token() -> str:
    """A fresh random API token, e.g. ``af_3q2-...`` (35 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def hash_token(token: str) -> str:
    """The hex SHA-256 of TOKEN, as the store keeps it."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_token(text: str) -> bool:
    """True when TEXT has the shape of an appflow token (a cheap check before any lookup)."""
    return text.startswith(TOKEN_PREFIX) and len(text) == len(TOKEN_PREFIX) + 32
