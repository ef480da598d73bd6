"""Redaction: secret values shown as a keyed digest, so a change is visible and the value is not.

Pure. A :class:`Redactor` knows a key and a set of secret values. It hides

- the values of every ``Secret``'s ``data`` and ``stringData`` (and kubectl's
  last-applied annotation on a Secret, which repeats them), whatever their origin;
- every occurrence of a known secret value in any other object or text: values
  appflow decrypted, and Helm values the chart's ``values.schema.json`` marks
  ``"x-sensitive": true`` or ``writeOnly: true`` (see :func:`sensitive_paths`).

Each is replaced by ``<redacted digest:0123456789ab>``: the first 12 hex digits
of HMAC-SHA256 under the installation's redaction key. The same value always
shows the same digest (a diff shows which value changed), and without the key
the digest cannot be used to guess a short password. A Secret's ``data`` value
is digested decoded, so ``data`` and ``stringData`` of one value match.

Free text (error messages, logs) is scrubbed of known values of at least
:data:`MIN_SCRUB_LENGTH` characters, in the forms they appear in: as they are,
base64-encoded (Secret data), JSON-escaped (API server errors quote JSON), and
line by line for multi-line values. Shorter values would turn every message
into noise; they are still hidden wherever their place is known.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from appflow.model.objects import Manifest, ObjectRef

MIN_SCRUB_LENGTH = 4
DIGEST_LENGTH = 12
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SCHEMA_MARKS = ("x-sensitive", "writeOnly")
"""values.schema.json keywords that mark a value sensitive (when true)."""

SchemaPath = tuple[str | None, ...]
"""A path into values; None matches any key or list index."""


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def forms_of(value: Any) -> list[str]:
    """The texts under which VALUE can appear in a message or an object."""
    if value is None or isinstance(value, bool | Mapping | list):
        return []
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    forms = [text, base64.b64encode(text.encode()).decode()]
    escaped = json.dumps(text)[1:-1]
    if escaped != text:
        forms.append(escaped)
    if "\n" in text:
        forms += [line.strip() for line in text.splitlines()]
    return [f for f in dict.fromkeys(forms) if len(f) >= MIN_SCRUB_LENGTH]


def leaves(value: Any) -> Iterable[Any]:
    """Every scalar inside VALUE."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield value


@dataclass(frozen=True)
class Redactor:
    """Hides Secret data and the known secret VALUES, digesting them with KEY."""

    key: bytes = b""
    values: frozenset[str] = frozenset()
    """The secret values as text (what :meth:`with_values` was given)."""
    _forms: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Every form of every value -> the mark that replaces it."""

    def with_values(self, values: Iterable[Any]) -> Redactor:
        """This redactor, also hiding VALUES (scalars; maps and lists by their leaves)."""
        texts = set(self.values)
        forms = dict(self._forms)
        for value in values:
            for leaf in leaves(value):
                if isinstance(leaf, bool):
                    continue
                texts.add(_as_bytes(leaf).decode(errors="replace"))
                mark = self.mask(leaf)
                for form in forms_of(leaf):
                    forms.setdefault(form, mark)
        return Redactor(key=self.key, values=frozenset(texts), _forms=forms)

    @property
    def sensitive(self) -> bool:
        """True when there are values to hide beyond Secret data."""
        return bool(self.values)

    def digest(self, value: Any) -> str:
        return hmac.new(self.key, _as_bytes(value), hashlib.sha256).hexdigest()[:DIGEST_LENGTH]

    def mask(self, value: Any) -> str:
        """The text that stands for VALUE."""
        return f"<redacted digest:{self.digest(value)}>"

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        if not self._forms:
            return None
        # Longest first: a value that contains another is replaced whole.
        ordered = sorted(self._forms, key=len, reverse=True)
        return re.compile("|".join(re.escape(f) for f in ordered))

    def scrub(self, text: str) -> str:
        """TEXT with every known secret value replaced by its mark."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(lambda m: self._forms[m.group(0)], text)

    def redact(self, obj: Manifest) -> Manifest:
        """OBJ as it may be shown or stored: a new object, OBJ is not changed."""
        if is_secret(obj):
            obj = self._redact_secret(obj)
        if not self.values:
            return obj
        redacted: Manifest = self._scrub_value(obj)
        return redacted

    def _scrub_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: self._scrub_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub_value(v) for v in value]
        if isinstance(value, str):
            # A short value is hidden where it is a whole field, not inside longer text.
            return self.mask(value) if value and value in self.values else self.scrub(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A sensitive number (a PIN) is hidden where it stands; short ones
            # (a replica count equal to it) are left alone.
            text = str(value)
            return (
                self.mask(value) if len(text) >= MIN_SCRUB_LENGTH and text in self.values else value
            )
        return value

    def _redact_secret(self, obj: Manifest) -> Manifest:
        result = dict(obj)
        data = obj.get("data")
        if isinstance(data, Mapping):
            result["data"] = {k: self.mask(_decoded(v)) for k, v in data.items()}
        string_data = obj.get("stringData")
        if isinstance(string_data, Mapping):
            result["stringData"] = {k: self.mask(v) for k, v in string_data.items()}
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            return result
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
            hidden = {**annotations, LAST_APPLIED: self.mask(annotations[LAST_APPLIED])}
            result["metadata"] = {**meta, "annotations": hidden}
        return result


def content_digest(live: Manifest | None, *, key: bytes) -> str:
    """For a Secret, a keyed digest of its data as the API server stores it, else "".

    Part of a Secret's fingerprint (see model.ownership): a hand edit of a value
    changes it, while the store keeps nothing a value could be guessed from.
    """
    if live is None or not is_secret(live):
        return ""
    data = live.get("data") or {}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:DIGEST_LENGTH]


def _decoded(value: Any) -> Any:
    """A Secret data value decoded from base64 (as the digest of its stringData would be)."""
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError:
        return value


def shown_secrets(
    rendered: Mapping[str, Iterable[Manifest]], redactor: Redactor
) -> list[dict[str, Any]]:
    """The Secrets of a revision's objects (cluster -> objects), their values as digests:
    what `appflow app show` lists, so that which value changed where stays visible."""
    shown: list[dict[str, Any]] = []
    for cluster in sorted(rendered):
        for obj in rendered[cluster]:
            if not is_secret(obj):
                continue
            hidden = redactor.redact(obj)
            values = {**(hidden.get("data") or {}), **(hidden.get("stringData") or {})}
            shown.append({"cluster": cluster, "object": str(ObjectRef.of(obj)), "data": values})
    return shown


def is_secret(obj: Manifest) -> bool:
    ref = ObjectRef.of(obj)
    return ref.group == "" and ref.kind == "Secret"


def is_redacted(value: Any) -> bool:
    """True when VALUE (an object, or any value in it) holds a redaction mark."""
    return any(isinstance(leaf, str) and "<redacted digest:" in leaf for leaf in leaves(value))


# --- values.schema.json -----------------------------------------------------------------


def sensitive_paths(schema: Any) -> list[SchemaPath]:
    """The value paths a values.schema.json marks sensitive (``x-sensitive`` or ``writeOnly``).

    Follows ``properties``, ``patternProperties`` and ``additionalProperties``
    (any key), ``items`` and ``prefixItems`` (any index), the ``allOf``,
    ``anyOf``, ``oneOf``, ``then`` and ``else`` branches, and local ``$ref``s
    (``#/$defs/x``, ``#/definitions/x``). Everything under a marked value is
    sensitive too.
    """
    found: list[SchemaPath] = []
    if isinstance(schema, Mapping):
        _walk_schema(schema, schema, (), found, depth=0)
    return list(dict.fromkeys(found))


_MAX_SCHEMA_DEPTH = 64


def _walk_schema(
    node: Mapping[str, Any],
    root: Mapping[str, Any],
    path: SchemaPath,
    out: list[SchemaPath],
    *,
    depth: int,
) -> None:
    if depth > _MAX_SCHEMA_DEPTH:
        return
    if any(node.get(mark) is True for mark in SCHEMA_MARKS):
        out.append(path)
        return

    def walk(sub: Any, at: SchemaPath) -> None:
        if isinstance(sub, Mapping):
            _walk_schema(sub, root, at, out, depth=depth + 1)

    ref = node.get("$ref")
    if isinstance(ref, str):
        walk(_resolve(root, ref), path)
    for key, sub in (node.get("properties") or {}).items():
        walk(sub, (*path, str(key)))
    for sub in (node.get("patternProperties") or {}).values():
        walk(sub, (*path, None))
    walk(node.get("additionalProperties"), (*path, None))
    items = node.get("items")
    for sub in items if isinstance(items, list) else [items]:
        walk(sub, (*path, None))
    for sub in node.get("prefixItems") or []:
        walk(sub, (*path, None))
    for combinator in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(combinator) or []:
            walk(sub, path)
    for branch in ("then", "else"):
        walk(node.get(branch), path)


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def values_at(values: Any, paths: Iterable[SchemaPath]) -> list[Any]:
    """Every value of VALUES that one of PATHS reaches (None matching any key or index)."""
    found: list[Any] = []
    for path in paths:
        found += _at(values, path)
    return found


def _at(value: Any, path: SchemaPath) -> list[Any]:
    if not path:
        return [] if value is None else [value]
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        children = list(value.values()) if head is None else [value[head]] if head in value else []
    elif isinstance(value, list) and head is None:
        children = list(value)
    else:
        children = []
    return [found for child in children for found in _at(child, rest)]
