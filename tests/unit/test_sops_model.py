"""SOPS files as data: detection, recipients, and putting decrypted values back into renders.

The fixtures are written as sops v3 writes them (tests/unit/testdata/sops/;
see README there): the metadata block, ENC[...] tokens per value.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.model.sops import (
    TOKEN,
    dotenv_metadata,
    dotenv_tokens,
    format_of,
    is_sops_metadata,
    leftover_tokens,
    looks_encrypted,
    recipients,
    reveal,
    reveal_secret_data,
    strip_metadata,
    token_values,
)

DATA = Path(__file__).parent / "testdata" / "sops"
T1 = "ENC[AES256_GCM,data:kvnz1FRjwFqX,iv:2a/JmbBthxpubwjw+2pQCSCZacGi6vUbDEljBmrd67I=,tag:WUo/1+awE3O0qQS+B6lo0w==,type:str]"
T2 = "ENC[AES256_GCM,data:Ow==,iv:p88FlCrqTADVwtSsrvjotQM6HjWw7zwJNX1gIOUrWuY=,tag:tIOAPJrkU+JUZhb4gLd2gQ==,type:int]"


def load(name: str) -> list[Any]:
    return list(yaml.safe_load_all((DATA / name).read_text()))


def test_tokens_are_recognised() -> None:
    assert TOKEN.fullmatch(T1)
    assert not TOKEN.fullmatch("ENC[not-a-token]")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.yaml", "yaml"),
        ("a.yml", "yaml"),
        ("a.json", "json"),
        ("a.env", "dotenv"),
        ("a.pem", "binary"),
    ],
)
def test_format_by_name(name: str, fmt: str) -> None:
    assert format_of(name) == fmt


def test_an_encrypted_file_is_told_from_one_that_mentions_sops() -> None:
    encrypted = (DATA / "secret.partial.yaml").read_bytes()
    assert looks_encrypted(encrypted, "yaml")
    assert not looks_encrypted(b"# we use sops:\nsops: {note: none}\n", "yaml")
    assert looks_encrypted(b'{"data": "x", "sops": {"mac": "ENC[AES256_GCM,data:x]"}}', "binary")


def test_recipients_of_age_and_other_keys() -> None:
    (doc,) = load("secret.partial.yaml")
    assert is_sops_metadata(doc["sops"])
    assert recipients(doc["sops"]) == (
        "age1u9a5a7hm7q34f3qwh7wf0zk8qrhaytvyq46hn4r6mldvjzvft4dssru52f",
    )
    meta = {
        "mac": T1,
        "version": "3.13.3",
        "pgp": [{"fp": "ABCD"}],
        "key_groups": [{"age": [{"recipient": "age1x"}]}],
    }
    assert recipients(meta) == ("pgp:ABCD", "age1x")


def test_dotenv_metadata_and_tokens() -> None:
    cipher = f"USER={T1}\nPIN={T2}\nsops_age__list_0__map_recipient=age1abc\nsops_mac={T1}\nsops_version=3.13.3\n"
    meta = dotenv_metadata(cipher)
    assert recipients(meta) == ("age1abc",)
    assert dotenv_tokens(cipher, "USER=edge\nPIN=42\n") == {T1: "edge", T2: "42"}


def test_token_values_pair_each_token_with_its_plaintext() -> None:
    cipher = {"a": T1, "b": [T2, "plain"], "sops": {"mac": T1, "version": "3"}}
    plain = {"a": "hunter2", "b": [1, "plain"]}
    assert token_values(cipher, plain) == {T1: "hunter2", T2: 1}


def test_reveal_keeps_types_replaces_inside_text_and_leaves_the_input() -> None:
    obj = {"kind": "Secret", "stringData": {"a": T1, "b": f"x-{T2}-y"}, "spec": {"n": T2}}
    shown = reveal(obj, {T1: "hunter2", T2: 7})
    assert shown == {
        "kind": "Secret",
        "stringData": {"a": "hunter2", "b": "x-7-y"},
        "spec": {"n": 7},
    }
    assert obj["stringData"]["a"] == T1


def test_leftover_tokens_name_their_fields() -> None:
    assert leftover_tokens({"data": {"a": T1}, "list": [f"x{T1}"]}) == ["data.a", "list[0]"]
    assert leftover_tokens({"data": {"a": "plain"}}) == []


def test_strip_metadata_only_removes_a_real_sops_block() -> None:
    assert strip_metadata({"kind": "X", "sops": {"mac": T1, "version": "3"}}) == {"kind": "X"}
    assert strip_metadata({"kind": "X", "sops": "mine"}) == {"kind": "X", "sops": "mine"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_generator_data_is_revealed_and_sops_lines_dropped() -> None:
    # kustomize secretGenerator `envs: [creds.env]` over a sops dotenv file, and
    # `files: [cert.pem]` over a sops binary file (a JSON envelope).
    envelope = '{"data": "ENC[...]", "sops": {}}'
    generated = {
        "kind": "Secret",
        "data": {
            "USER": b64(T1),
            "sops_mac": b64(T1),
            "sops_version": b64("3.13.3"),
            "cert.pem": b64(envelope),
        },
    }
    shown = reveal_secret_data(generated, {T1: "edge"}, {envelope: "-----BEGIN KEY-----"})
    assert shown["data"] == {"USER": b64("edge"), "cert.pem": b64("-----BEGIN KEY-----")}


def test_base64_that_kustomize_wrapped_over_lines_is_read() -> None:
    wrapped = "\n".join(b64(T1)[i : i + 40] for i in range(0, len(b64(T1)), 40)) + "\n"
    shown = reveal_secret_data({"kind": "Secret", "data": {"A": wrapped}}, {T1: "edge"}, {})
    assert shown["data"] == {"A": b64("edge")}
