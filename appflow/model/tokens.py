"""API bearer tokens: how they look and how they are kept.

A token is ``af_`` and 32 URL-safe random characters (192 bits), shown once when it is
created. The store keeps only its SHA-256: a copy of the store grants nothing. A plain
hash (no salt, no slow KDF) is enough because the token is random, not a password, and
it lets the server find a token by its hash with an index lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from appflow.errors import ConfigError

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


_TTL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_ttl(text: str) -> timedelta:
    """How long a token lives: '90d', '12h', '30m', '3600s', '2w'; ConfigError otherwise."""
    match = _TTL.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(
            f"--ttl {text!r} is not a duration",
            hint="write a positive whole number and a unit: s, m, h, d or w (e.g. 90d)",
        )
    return timedelta(seconds=int(match.group(1)) * _TTL_UNITS[match.group(2)])
