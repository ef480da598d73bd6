"""The pure parts of the hub's watches: what a relist after 410 delivers, and when a release
may skip its fresh list (issue 12)."""

from __future__ import annotations

from typing import Any

from appflow.hub.reconcile import may_release
from appflow.kube.client import relist_difference


def cm(name: str, version: str, data: str = "x") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
        "data": {"v": data},
    }


def test_a_relist_delivers_only_the_difference() -> None:
    known = [cm("same", "5"), cm("changed", "6"), cm("gone", "7")]
    listed = [cm("same", "5"), cm("changed", "9", "new"), cm("new", "10")]
    events = relist_difference({_ref(o): o for o in known}, listed)
    got = {o["metadata"]["name"]: (e, o) for e, o in events}
    assert {n: e for n, (e, _) in got.items()} == {
        "changed": "MODIFIED",
        "gone": "DELETED",
        "new": "ADDED",
    }
    assert got["changed"][1]["data"] == {"v": "new"}
    assert got["gone"][1]["metadata"]["resourceVersion"] == "7"


def test_a_relist_of_an_unchanged_kind_delivers_nothing() -> None:
    known = [cm("a", "1"), cm("b", "2")]
    assert relist_difference({_ref(o): o for o in known}, list(known)) == []


def _ref(obj: dict[str, Any]) -> Any:
    from appflow.model.objects import ObjectRef

    return ObjectRef.of(obj)


def afd(
    cluster: str,
    *,
    staged: int | None = 2,
    released: int | None = None,
    verdict: tuple[int, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"app": "web", "cluster": cluster}
    if staged is not None:
        spec["staged"] = {"revision": staged, "index": f"i{staged}"}
    if released is not None:
        spec["released"] = {"revision": released, "index": f"i{released}"}
    status: dict[str, Any] = {}
    if verdict is not None:
        status["staged"] = {"revision": verdict[0], "result": verdict[1]}
    return {"spec": spec, "status": status}


def test_nothing_to_release_without_a_verdict_for_what_is_staged() -> None:
    seen = [afd("a"), afd("b", verdict=(1, "Validated")), afd("c", staged=1, released=1)]
    assert not may_release(seen, set(), policy="wait")
    # Offline clusters wait for their agents under "wait".
    assert not may_release(seen, {"a"}, policy="wait")


def test_a_verdict_or_an_offline_target_released_without_one_needs_the_list() -> None:
    assert may_release([afd("a"), afd("b", verdict=(2, "Validated"))], set(), policy="wait")
    assert may_release([afd("a", verdict=(2, "Rejected"))], set(), policy="wait")
    for policy in ("skip", "release"):
        assert may_release([afd("a"), afd("b")], {"b"}, policy=policy)  # type: ignore[arg-type]
    # An Offline cluster whose Deployment has nothing pending changes nothing.
    assert not may_release([afd("b", staged=2, released=2)], {"b"}, policy="release")
