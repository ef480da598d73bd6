"""age X25519 identities: read, make, and derive their public recipients.

An identity is ``AGE-SECRET-KEY-1...`` (Bech32, upper case, of the 32-byte
X25519 scalar) and its recipient ``age1...`` (Bech32 of the public key), as the
age specification (age-encryption.org/v1) and ``age-keygen`` write them. An
identity file holds identities one per line, with ``#`` comments
(``age-keygen`` adds ``# public key: age1...``).

The recipient is derived here, so appflow can tell before running sops whether
a cluster holds a key a file was encrypted for, and name the recipients when it
does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from appflow.errors import ConfigError

# cryptography is imported where a key is made or read: `appflow sync` of an app
# without secrets never needs it (tests/unit/test_cli_lazy.py).

IDENTITY_HRP = "age-secret-key-"
RECIPIENT_HRP = "age"
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


@dataclass(frozen=True)
class Identity:
    """One age X25519 identity. Its repr never shows the secret."""

    secret: str
    recipient: str

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient!r})"


def generate() -> Identity:
    """A new random identity (what ``age-keygen`` makes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return _identity(raw)


def parse_identity(text: str) -> Identity:
    """The identity written as TEXT (``AGE-SECRET-KEY-1...``); ConfigError when it is not one."""
    hrp, data = _bech32_decode(text.strip().lower())
    if hrp != IDENTITY_HRP or data is None or len(data) != 32:
        raise ConfigError("not an age identity (expected AGE-SECRET-KEY-1...)")
    return _identity(bytes(data))


def parse_identities(text: str) -> list[Identity]:
    """Every identity in an identity file's TEXT, in order; ConfigError naming a bad line."""
    found: list[Identity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.upper().startswith("AGE-SECRET-KEY-1"):
            raise ConfigError(
                f"line {number} is not an age identity",
                hint="age identity files hold AGE-SECRET-KEY-1... lines (age-keygen writes one); "
                "SSH and plugin identities are not supported",
            )
        try:
            found.append(parse_identity(stripped))
        except ConfigError as err:
            raise ConfigError(f"line {number}: {err.message}") from None
    return found


def is_recipient(text: str) -> bool:
    hrp, data = _bech32_decode(text.strip())
    return hrp == RECIPIENT_HRP and data is not None and len(data) == 32


def format_identity_file(identity: Identity, *, comment: str = "") -> str:
    """The identity as an identity file, as age-keygen writes one."""
    lines = [f"# {comment}"] if comment else []
    lines += [f"# public key: {identity.recipient}", identity.secret]
    return "\n".join(lines) + "\n"


def _identity(raw: bytes) -> Identity:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.from_private_bytes(raw)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Identity(
        secret=_bech32_encode(IDENTITY_HRP, raw).upper(),
        recipient=_bech32_encode(RECIPIENT_HRP, public),
    )


# --- Bech32 (BIP 173), which age uses for both forms ---------------------------------------


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            check ^= gen if (top >> i) & 1 else 0
    return check


def _expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(
    data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool
) -> list[int] | None:
    acc = bits = 0
    out: list[int] = []
    top = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & top)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & top)
    elif bits >= from_bits or (acc << (to_bits - bits)) & top:
        return None
    return out


def _bech32_encode(hrp: str, payload: bytes) -> str:
    data = _convert(payload, 8, 5, pad=True) or []
    check = _polymod([*_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def _bech32_decode(text: str) -> tuple[str | None, bytes | None]:
    if text.lower() != text and text.upper() != text:
        return None, None
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text) or any(c not in _CHARSET for c in text[sep + 1 :]):
        return None, None
    hrp = text[:sep]
    data = [_CHARSET.index(c) for c in text[sep + 1 :]]
    if _polymod([*_expand(hrp), *data]) != 1:
        return hrp, None
    decoded = _convert(data[:-6], 5, 8, pad=False)
    return hrp, None if decoded is None else bytes(decoded)
