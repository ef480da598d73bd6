"""The secrets stage's rules that need no cluster and no sops: marks, values merge, policy."""

from __future__ import annotations

import pytest

from appflow.engine.secrets import _marked, merge_helm_values, plain_sensitive_paths


@pytest.mark.parametrize(
    ("path", "marks", "expected"),
    [
        ("secrets/db.yaml", ["secrets/"], True),
        ("secrets/deep/db.yaml", ["secrets/"], True),
        ("secretsx/db.yaml", ["secrets/"], False),
        ("secrets/db.yaml", ["secrets"], True),
        ("db.sops.yaml", ["*.sops.yaml"], True),
        (
            "sub/db.sops.yaml",
            ["*.sops.yaml"],
            True,
        ),  # * crosses folders, as in .sops.yaml path_regex
        ("db.yaml", ["*.sops.yaml"], False),
        ("db.yaml", ["./db.yaml"], True),
        ("anything.yaml", ["."], True),
        ("db.yaml", [], False),
    ],
)
def test_marks(path: str, marks: list[str], expected: bool) -> None:
    assert _marked(path, marks) is expected


def test_values_files_merge_as_helm_merges_them() -> None:
    merged = merge_helm_values(
        {"a": {"x": 1, "y": 2}, "list": [1, 2], "keep": True},
        {"a": {"y": 3}, "list": [9], "keep": None},
    )
    # Maps merge, lists are replaced, and null stays to remove the chart's default later.
    assert merged == {"a": {"x": 1, "y": 3}, "list": [9], "keep": None}


def test_sensitive_values_given_in_plain_text_are_named() -> None:
    schema = {
        "properties": {
            "auth": {"properties": {"password": {"type": "string", "x-sensitive": True}}},
            "keys": {"additionalProperties": {"writeOnly": True}},
        }
    }
    assert plain_sensitive_paths(schema, {"auth": {"password": "x"}, "keys": {"a": "b"}}) == [
        "auth.password",
        "keys.*",
    ]
    assert plain_sensitive_paths(schema, {"auth": {"user": "x"}}) == []


async def test_clusters_that_ask_together_share_one_scan_of_the_inputs() -> None:
    # A fleet's renders start together: each used to scan the app's inputs (paths resolved,
    # files read) before any had remembered the answer.
    import asyncio
    import threading

    from appflow.engine.secrets import Scan, SecretsStage

    stage = SecretsStage()
    calls = 0
    gate = threading.Event()

    def scan() -> Scan:
        nonlocal calls
        calls += 1
        gate.wait(10)
        return Scan(encrypted=(), plain=("values-prod.yaml",))

    # All 50 start before the scan's thread can answer (its answer comes through the loop).
    waiting = [asyncio.create_task(stage._scan("key", scan)) for _ in range(50)]
    gate.set()
    found = await asyncio.gather(*waiting)
    assert calls == 1
    assert {f.plain for f in found} == {("values-prod.yaml",)}
    await stage._scan("key", scan)  # remembered
    assert calls == 1

    def broken() -> Scan:
        raise OSError("unreadable")

    results = await asyncio.gather(
        *(stage._scan("other", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) for r in results)
