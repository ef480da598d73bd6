"""Redaction: Secret data and known secret values shown as keyed digests, never as values."""

from __future__ import annotations

import base64
import json
from typing import Any

from appflow.model.objects import Manifest
from appflow.model.redact import Redactor, is_redacted, sensitive_paths, values_at

KEY = b"installation-key"


def secret(**fields: Any) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "x"},
        **fields,
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_data_and_string_data_show_the_same_digest_for_the_same_value() -> None:
    r = Redactor(key=KEY)
    shown = r.redact(secret(data={"a": b64("hunter2")}, stringData={"b": "hunter2"}))
    assert shown["data"]["a"] == shown["stringData"]["b"] == r.mask("hunter2")
    assert "hunter2" not in json.dumps(shown)
    assert b64("hunter2") not in json.dumps(shown)


def test_a_changed_value_changes_the_digest_and_the_key_changes_every_digest() -> None:
    assert Redactor(key=KEY).mask("one") != Redactor(key=KEY).mask("two")
    # Keyed: the digest of a short password cannot be looked up without the key.
    assert Redactor(key=KEY).mask("one") != Redactor(key=b"other").mask("one")


def test_redact_leaves_the_input_alone() -> None:
    original = secret(data={"a": b64("v")})
    Redactor(key=KEY).redact(original)
    assert original["data"]["a"] == b64("v")


def test_kubectl_last_applied_annotation_of_a_secret_is_hidden() -> None:
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": '{"data":{"a":"c2VjcmV0"}}'}
    shown = Redactor(key=KEY).redact(
        secret(metadata={"name": "db", "annotations": annotations}, data={})
    )
    assert "c2VjcmV0" not in json.dumps(shown)


def test_known_values_are_hidden_in_any_object_and_in_every_form() -> None:
    password = "line-one\nline-two-secret"
    r = Redactor(key=KEY).with_values([password, 1234567])
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"whole": password, "inside": "pass=line-two-secret;", "pin": 1234567, "n": 3},
    }
    shown = r.redact(config)
    text = json.dumps(shown)
    assert "line-two-secret" not in text
    assert "1234567" not in text
    assert shown["data"]["n"] == 3
    assert shown["data"]["whole"] == r.mask(password)
    # Messages quote values raw, JSON-escaped, base64-encoded (Secret data) or one line of them.
    for quoted in (password, json.dumps(password), b64(password), "line-two-secret"):
        assert "line-two-secret" not in r.scrub(f"error: invalid value {quoted}")
        assert "<redacted digest:" in r.scrub(f"error: invalid value {quoted}")


def test_short_values_are_hidden_where_they_stand_but_not_inside_text() -> None:
    r = Redactor(key=KEY).with_values(["abc"])
    assert r.scrub("abcdef") == "abcdef"
    shown = r.redact({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "abc"}})
    assert shown["data"]["k"] == r.mask("abc")


def test_is_redacted() -> None:
    r = Redactor(key=KEY)
    assert is_redacted(r.redact(secret(data={"a": b64("v")})))
    assert not is_redacted(secret(data={"a": b64("v")}))


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "password": {"type": "string", "x-sensitive": True},
                "user": {"type": "string"},
            },
        },
        "apiKeys": {
            "type": "object",
            "additionalProperties": {"type": "string", "writeOnly": True},
        },
        "backends": {"type": "array", "items": {"$ref": "#/$defs/backend"}},
        "token": {"type": "string", "x-sensitive": False},
    },
    "allOf": [
        {"if": {}, "then": {"properties": {"tls": {"properties": {"key": {"writeOnly": True}}}}}}
    ],
    "$defs": {"backend": {"type": "object", "properties": {"secret": {"x-sensitive": True}}}},
}


def test_sensitive_paths_follow_properties_maps_items_refs_and_branches() -> None:
    assert sorted(sensitive_paths(SCHEMA), key=str) == sorted(
        [
            ("auth", "password"),
            ("apiKeys", None),
            ("backends", None, "secret"),
            ("tls", "key"),
        ],
        key=str,
    )


def test_values_at_collects_what_the_paths_reach() -> None:
    values = {
        "auth": {"password": "pw", "user": "edge"},
        "apiKeys": {"a": "k1", "b": "k2"},
        "backends": [{"secret": "s1"}, {"name": "no-secret"}],
        "token": "not-sensitive",
    }
    found = values_at(values, sensitive_paths(SCHEMA))
    assert sorted(map(str, found)) == ["k1", "k2", "pw", "s1"]
