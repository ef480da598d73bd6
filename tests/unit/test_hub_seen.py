"""When a replica's watch copy of an object may stand in for a GET (appflow.hub.seen)."""

from __future__ import annotations

from typing import Any

from appflow.hub.seen import Seen, version_of


def app(name: str, version: str, *, revision: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "appflow.dev/v1alpha1",
        "kind": "AppFlow",
        "metadata": {"name": name, "namespace": "ws", "resourceVersion": version},
        "status": {"revision": revision},
    }


def seen_with(*objects: dict[str, Any]) -> Seen:
    seen = Seen({"AppFlow"})
    seen.listed("AppFlow", list(objects))
    return seen


def test_nothing_is_read_from_the_watch_before_a_get_confirms_the_object() -> None:
    # The watch may still carry the previous owner's last writes: one GET first.
    seen = seen_with(app("web", "10"))
    assert seen.get("AppFlow", "ws", "web") is None
    seen.read("AppFlow", "ws", "web", app("web", "12", revision=3), epoch=0)
    got = seen.get("AppFlow", "ws", "web")
    assert got is not None
    assert got["status"]["revision"] == 3


def test_an_older_watch_event_does_not_replace_a_newer_read_or_write() -> None:
    seen = seen_with()
    seen.read("AppFlow", "ws", "web", app("web", "12", revision=3), epoch=0)
    seen.wrote(app("web", "15", revision=4))  # the replica's own write's answer
    seen.observe("MODIFIED", app("web", "13", revision=99))  # the watch catching up
    got = seen.get("AppFlow", "ws", "web")
    assert got is not None
    assert got["status"]["revision"] == 4
    seen.observe("MODIFIED", app("web", "20", revision=5))  # someone else's, later
    got = seen.get("AppFlow", "ws", "web")
    assert got is not None
    assert got["status"]["revision"] == 5


def test_a_key_that_moved_or_a_conflict_makes_the_next_read_a_get_again() -> None:
    seen = seen_with()
    seen.read("AppFlow", "ws", "web", app("web", "12"), epoch=0)
    seen.forget("AppFlow", "ws", "web")
    assert seen.get("AppFlow", "ws", "web") is None


def test_a_get_sent_before_the_key_moved_confirms_nothing() -> None:
    # It may have been answered before the previous owner's last writes.
    seen = seen_with()
    epoch = seen.epoch("AppFlow", "ws", "web")
    seen.forget("AppFlow", "ws", "web")  # the key moved while the GET ran
    seen.read("AppFlow", "ws", "web", app("web", "12"), epoch=epoch)
    assert seen.get("AppFlow", "ws", "web") is None
    seen.read("AppFlow", "ws", "web", app("web", "14"), epoch=seen.epoch("AppFlow", "ws", "web"))
    assert seen.get("AppFlow", "ws", "web") is not None


def test_a_failed_watch_serves_nothing_until_it_lists_again() -> None:
    seen = seen_with()
    seen.read("AppFlow", "ws", "web", app("web", "12"), epoch=0)
    seen.stopped("AppFlow")
    assert seen.get("AppFlow", "ws", "web") is None
    seen.listed("AppFlow", [app("web", "12")])
    assert seen.get("AppFlow", "ws", "web") is not None


def test_deleted_objects_are_read_again() -> None:
    seen = seen_with()
    seen.read("AppFlow", "ws", "web", app("web", "12"), epoch=0)
    seen.observe("DELETED", app("web", "13"))
    assert seen.get("AppFlow", "ws", "web") is None
    # Absence is never kept: a GET that found nothing confirms nothing.
    seen.read("AppFlow", "ws", "db", None, epoch=0)
    assert seen.get("AppFlow", "ws", "db") is None
    # A list without it (deleted while no watch ran) drops it too.
    seen.read("AppFlow", "ws", "api", app("api", "14"), epoch=0)
    seen.listed("AppFlow", [])
    assert seen.get("AppFlow", "ws", "api") is None


def test_a_version_that_is_not_an_integer_is_never_served() -> None:
    assert version_of(app("web", "0012")) is None
    assert version_of(app("web", "abc")) is None
    assert version_of(app("web", "12")) == 12
    seen = seen_with()
    seen.read("AppFlow", "ws", "web", app("web", "x1"), epoch=0)
    assert seen.get("AppFlow", "ws", "web") is None


def test_a_copy_is_the_callers_to_change() -> None:
    seen = seen_with()
    seen.read("AppFlow", "ws", "web", app("web", "12", revision=1), epoch=0)
    got = seen.get("AppFlow", "ws", "web")
    assert got is not None
    got["status"]["revision"] = 7
    again = seen.get("AppFlow", "ws", "web")
    assert again is not None
    assert again["status"]["revision"] == 1


def test_kinds_it_does_not_keep_are_always_a_get() -> None:
    seen = seen_with()
    other = {**app("web", "12"), "kind": "Cluster"}
    seen.read("Cluster", "ws", "web", other, epoch=0)
    seen.wrote(other)
    assert seen.get("Cluster", "ws", "web") is None
