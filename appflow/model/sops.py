"""SOPS-encrypted files as data: telling them apart, whom they are for, and what they hide.

Pure. The sops binary (``appflow.secrets.sops``) does the cryptography; this
module reads what sops writes around it, so that appflow can refuse a file
before decrypting it (not marked for decryption, not encrypted although it
should be, encrypted for keys the cluster does not hold) and can put the
decrypted values back where a render carried the ciphertext.

Encrypted values are tokens ``ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]``.
Each token has its own random IV, so a token names exactly one encrypted
value: :func:`token_values` pairs every token of a file with its plaintext,
and :func:`reveal` replaces tokens wherever a render left them (plain YAML and
kustomize see only ciphertext, so their renders are safe to cache; see
``engine.secrets``). Kustomize may add fields or patch others around an
encrypted value; a value it changed is no longer a token and is left alone.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from appflow.model.objects import Manifest

SopsFormat = Literal["yaml", "json", "dotenv", "binary"]

TOKEN = re.compile(
    r"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:[a-z]+\]"
)
"""One value sops encrypted."""
TOKEN_PREFIX = "ENC[AES256_GCM,"

# What sops writes into every file it encrypts, per format: the encrypted MAC
# (as Flux's decryptor detects them). Plain text that merely mentions "sops:"
# does not carry it.
_MARKERS: dict[SopsFormat, tuple[bytes, ...]] = {
    "yaml": (b"mac: ENC[",),
    "json": (b'"mac": "ENC[',),
    "dotenv": (b"sops_mac=ENC[",),
}
_SUFFIX_FORMATS: dict[str, SopsFormat] = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".env": "dotenv",
}
_KEY_KINDS = ("age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "huawei_kms")
SIZE_LIMIT = 5 << 20
"""Largest encrypted file decrypted (5 MiB, Flux's limit): a file is read whole into memory."""


def format_of(name: str) -> SopsFormat:
    """The sops input type of a file, by its name (sops itself decides the same way)."""
    for suffix, kind in _SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return kind
    return "binary"


def looks_encrypted(content: bytes, fmt: SopsFormat) -> bool:
    """True when CONTENT carries the encrypted MAC sops writes in format FMT, or any value
    sops encrypted (a file whose metadata was cut off is a broken SOPS file, not a plain one).

    A binary file is stored by sops as a JSON envelope, so it carries the JSON marker.
    """
    markers = _MARKERS["json"] if fmt == "binary" else _MARKERS[fmt]
    return TOKEN_PREFIX.encode() in content or any(marker in content for marker in markers)


def is_sops_metadata(value: Any) -> bool:
    """True when VALUE is the ``sops`` block sops writes into a YAML or JSON document."""
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("mac"), str)
        and value["mac"].startswith(TOKEN_PREFIX)
        and any(k in value for k in ("lastmodified", "version"))
    )


def recipients(metadata: Any) -> tuple[str, ...]:
    """Whom a file is encrypted for, from its ``sops`` block: age recipients as they are,
    other keys as ``kind:identifier`` (``pgp:FINGERPRINT``, ``kms:ARN``...)."""
    if not isinstance(metadata, Mapping):
        return ()
    found: list[str] = []
    groups: list[Mapping[str, Any]] = [metadata]
    groups += [g for g in metadata.get("key_groups") or [] if isinstance(g, Mapping)]
    for group in groups:
        for kind in _KEY_KINDS:
            for entry in group.get(kind) or []:
                if not isinstance(entry, Mapping):
                    continue
                if kind == "age":
                    name = entry.get("recipient")
                    if isinstance(name, str):
                        found.append(name)
                    continue
                name = next(
                    (
                        entry[k]
                        for k in ("fp", "arn", "resource_id", "vault_url", "key_id")
                        if isinstance(entry.get(k), str)
                    ),
                    "?",
                )
                found.append(f"{kind}:{name}")
    return tuple(dict.fromkeys(found))


def dotenv_metadata(text: str) -> dict[str, Any]:
    """The ``sops`` block of a dotenv file (sops writes it as ``sops_*=`` lines)."""
    meta: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.startswith("sops_"):
            continue
        name = key.removeprefix("sops_")
        match = re.fullmatch(r"age__list_(\d+)__map_(\w+)", name)
        if match:
            ages = meta.setdefault("age", [])
            index = int(match.group(1))
            while len(ages) <= index:
                ages.append({})
            ages[index][match.group(2)] = value
        else:
            meta[name] = value
    return meta


@dataclass(frozen=True, kw_only=True)
class Decrypted:
    """One file decrypted: where it came from and every token's plaintext."""

    file: str
    """Path relative to the app folder (or a name for content that is not a file)."""
    format: SopsFormat
    recipients: tuple[str, ...]
    documents: tuple[Any, ...]
    """The decrypted documents (YAML/JSON); for dotenv and binary, the text as one str."""
    tokens: Mapping[str, Any]
    """Every ENC[...] token of the ciphertext -> its plaintext value."""
    secrets: tuple[Any, ...] = ()
    """The plaintext values that are secret (see :func:`secret_values`): what redaction hides."""
    ciphertext_text: str = ""
    """The encrypted file as text (dotenv and binary: a generator may carry it whole)."""


def token_values(cipher: Any, plain: Any) -> dict[str, Any]:
    """Pair each token of CIPHER with the value at the same place in PLAIN.

    CIPHER is a document as sops wrote it, PLAIN the same document decrypted:
    keys and list lengths are the same, only leaves that sops encrypted differ.
    """
    found: dict[str, Any] = {}
    _pair(cipher, plain, found)
    return found


def _pair(cipher: Any, plain: Any, out: dict[str, Any]) -> None:
    if isinstance(cipher, Mapping) and isinstance(plain, Mapping):
        for key, value in cipher.items():
            if key == "sops" and is_sops_metadata(value):
                continue
            if key in plain:
                _pair(value, plain[key], out)
    elif isinstance(cipher, list) and isinstance(plain, list):
        for a, b in zip(cipher, plain, strict=False):
            _pair(a, b, out)
    elif isinstance(cipher, str) and TOKEN.fullmatch(cipher):
        out[cipher] = plain


_IDENTITY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "type"})


def secret_values(cipher: Any, plain: Any) -> list[Any]:
    """The decrypted values of a document that are secrets.

    Every encrypted value of a values file is. Of a Kubernetes object
    encrypted whole, its identity (apiVersion, kind, metadata, a Secret's
    type) is not: hiding "Secret" or a namespace's name wherever they appear
    would hide what every message is about.
    """
    if (
        isinstance(plain, Mapping)
        and isinstance(cipher, Mapping)
        and "kind" in plain
        and "apiVersion" in plain
    ):
        cipher = {k: v for k, v in cipher.items() if k not in _IDENTITY_FIELDS}
        plain = {k: v for k, v in plain.items() if k not in _IDENTITY_FIELDS}
    return list(token_values(cipher, plain).values())


def dotenv_tokens(cipher: str, plain: str) -> dict[str, Any]:
    """Pair the tokens of a dotenv file with its decrypted values, line by line (same keys)."""
    values = dict(_dotenv_pairs(plain))
    return {v: values[k] for k, v in _dotenv_pairs(cipher) if TOKEN.fullmatch(v) and k in values}


def _dotenv_pairs(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            yield key.strip(), value


def strip_metadata(obj: Manifest) -> Manifest:
    """OBJ without the ``sops`` block sops keeps in every encrypted document."""
    if is_sops_metadata(obj.get("sops")):
        return {k: v for k, v in obj.items() if k != "sops"}
    return obj


def reveal(value: Any, tokens: Mapping[str, Any]) -> Any:
    """VALUE with every token replaced by its plaintext, as a new value.

    A string that is exactly a token becomes the plaintext with its type (a
    number stays a number); a token inside a longer string is replaced by the
    plaintext's text.
    """
    if isinstance(value, Mapping):
        return {k: reveal(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, tokens) for v in value]
    if isinstance(value, str) and TOKEN_PREFIX in value:
        if value in tokens:
            return tokens[value]
        return TOKEN.sub(lambda m: _text(tokens.get(m.group(0), m.group(0))), value)
    return value


def reveal_secret_data(
    obj: Manifest, tokens: Mapping[str, Any], envelopes: Mapping[str, str]
) -> Manifest:
    """A Secret whose base64 ``data`` carries tokens or a whole encrypted file, revealed.

    kustomize's secretGenerator encodes what it read into ``data``: each line
    of an ``envs`` file (sops's own ``sops_*`` lines included, which are
    dropped here) or a whole ``files`` file, whose encrypted text ENVELOPES
    maps to its plaintext. Decode, reveal, encode again.
    """
    data = obj.get("data")
    if obj.get("kind") != "Secret" or not isinstance(data, Mapping):
        return obj
    from_dotenv = _is_token(_decoded(data.get("sops_mac")))
    changed: dict[str, Any] = {
        k: v for k, v in data.items() if not (from_dotenv and str(k).startswith("sops_"))
    }
    for key, encoded in list(changed.items()):
        text = _decoded(encoded)
        if text is None:
            continue
        if text in envelopes:
            changed[key] = base64.b64encode(envelopes[text].encode()).decode()
        elif TOKEN_PREFIX in text:
            revealed = reveal(text, tokens)
            changed[key] = base64.b64encode(_text(revealed).encode()).decode()
    if changed == data:
        return obj
    return {**obj, "data": changed}


def _decoded(encoded: Any) -> str | None:
    if not isinstance(encoded, str):
        return None
    try:
        # kustomize wraps long base64 over several lines.
        return base64.b64decode("".join(encoded.split()), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _is_token(text: str | None) -> bool:
    return text is not None and TOKEN.fullmatch(text) is not None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def leftover_tokens(value: Any, path: str = "") -> list[str]:
    """Field paths of VALUE that still hold an encrypted value after revealing."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += leftover_tokens(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += leftover_tokens(item, f"{path}[{index}]")
    elif isinstance(value, str) and TOKEN_PREFIX in value:
        found.append(path or ".")
    return found
