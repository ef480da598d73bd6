"""Membership rules of the hub's controllers: bounded rendezvous shares, handover, fencing."""

from __future__ import annotations

import secrets

import pytest

from appflow.model import membership as m


def _keys(n: int) -> list[str]:
    return [f"appflow/appflow/app-{secrets.token_hex(4)}" for _ in range(n)]


@pytest.mark.parametrize("trial", range(50))
def test_sixty_keys_over_three_members_stay_within_a_quarter_of_a_third(trial: int) -> None:
    members = [f"controller-{secrets.token_hex(3)}" for _ in range(3)]
    shares = m.shares(_keys(60), members)
    assert all(15 <= len(keys) <= 25 for keys in shares.values()), {
        k: len(v) for k, v in shares.items()
    }


@pytest.mark.parametrize("trial", range(50))
def test_keys_of_other_kinds_do_not_push_a_share_of_the_apps_out_of_bounds(trial: int) -> None:
    # A replica's keys: its apps, and the workspace's repositories, clusters and collector.
    apps = _keys(60)
    others = [f"gitrepo/appflow/repo-{i}" for i in range(6)] + ["gc/appflow"]
    members = [f"controller-{secrets.token_hex(3)}" for _ in range(3)]
    shares = m.shares([*apps, *others], members)
    of_apps = {k: len(set(v) & set(apps)) for k, v in shares.items()}
    assert all(15 <= n <= 25 for n in of_apps.values()), of_apps


def test_keys_without_a_kind_are_balanced_together() -> None:
    keys = [f"key-{i:02d}" for i in range(60)]
    for _ in range(20):
        members = [f"m-{secrets.token_hex(3)}" for _ in range(3)]
        assert all(16 <= len(v) <= 22 for v in m.shares(keys, members).values())


def test_assignment_depends_on_the_sets_not_their_order() -> None:
    keys = _keys(40)
    assert m.assign(keys, ["a", "b", "c"]) == m.assign(list(reversed(keys)), ["c", "a", "b"])
    assert m.keys_digest(keys) == m.keys_digest(reversed(keys))


def test_a_member_leaving_moves_its_keys_and_few_others() -> None:
    keys = _keys(60)
    before = m.assign(keys, ["a", "b", "c"])
    after = m.assign(keys, ["a", "b"])
    assert set(after.values()) == {"a", "b"}
    moved_among_survivors = [k for k in keys if before[k] != "c" and before[k] != after[k]]
    assert len(moved_among_survivors) <= 8


def test_no_members_means_no_owner() -> None:
    assert m.assign(["x"], []) == {}


def _sighting(member: str, *, seen_at: float, duration: float) -> m.Sighting:
    record = m.LeaseRecord(member=member, version="1", duration=duration, view=None)
    return m.Sighting(record=record, seen_at=seen_at)


def test_liveness_is_measured_from_when_the_observer_saw_a_change() -> None:
    first = m.observe({}, [m.LeaseRecord(member="a", version="1", duration=10, view=None)], now=100)
    same = m.observe(
        first, [m.LeaseRecord(member="a", version="1", duration=10, view=None)], now=105
    )
    assert same["a"].seen_at == 100  # unchanged Lease: still the first sighting
    assert m.live_members(same, now=108.9) == {"a"}
    assert m.live_members(same, now=109.1) == frozenset()  # 0.9 of 10 s after the sighting
    moved = m.observe(
        same, [m.LeaseRecord(member="a", version="2", duration=10, view=None)], now=109
    )
    assert m.live_members(moved, now=115) == {"a"}
    assert m.observe(moved, [], now=110) == {}


def test_the_holder_is_fenced_before_any_observer_takes_over() -> None:
    fence = m.Fence(duration=15.0).renewed(started_at=50.0)
    # The observer saw that renewal no earlier than it started.
    observer = {"a": _sighting("a", seen_at=50.0, duration=15.0)}
    fenced_at = fence.deadline()
    assert fence.remaining(now=fenced_at - 0.01) > 0
    assert fence.remaining(now=fenced_at) <= 0
    assert m.live_members(observer, now=fenced_at) == {"a"}  # still counted live then
    assert m.Fence(duration=15.0).remaining(now=0) < 0  # never renewed: fenced


def _allowed(me: str, keys: list[str], live: set[str], views: dict[str, m.View | None]) -> set[str]:
    return set(m.allowed(me=me, keys=keys, live=frozenset(live), published=views[me], views=views))


def test_a_joining_member_starts_a_key_only_after_its_owner_published_the_new_view() -> None:
    keys = _keys(30)
    digest = m.keys_digest(keys)
    old = m.View(members=("a", "b"), keys=digest)
    new = m.View(members=("a", "b", "c"), keys=digest)
    gained_by_c = {k for k, owner in m.assign(keys, new.members).items() if owner == "c"}
    assert gained_by_c
    # c has published the new view; a and b still publish the old one: c waits.
    views = {"a": old, "b": old, "c": new}
    assert _allowed("c", keys, {"a", "b", "c"}, views) == set()
    # a and b still act on everything they own under the old view, minus what c gains only
    # once they see c (their live view), which makes them stop those keys first.
    a_now = _allowed("a", keys, {"a", "b"}, views)
    assert a_now == {k for k, o in m.assign(keys, old.members).items() if o == "a"}
    # Once a and b published the new view, c starts, and nobody else acts on c's keys.
    views = {"a": new, "b": new, "c": new}
    c_keys = _allowed("c", keys, {"a", "b", "c"}, views)
    assert c_keys == gained_by_c
    for other in ("a", "b"):
        assert not c_keys & _allowed(other, keys, {"a", "b", "c"}, views)


def test_no_two_members_act_on_one_key_whatever_they_published() -> None:
    keys = _keys(24)
    digest = m.keys_digest(keys)
    choices = [None, ("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c"), ("a",), ("b",)]
    for va in choices:
        for vb in choices:
            views = {
                "a": m.View(members=va, keys=digest) if va else None,
                "b": m.View(members=vb, keys=digest) if vb else None,
            }
            live = {"a", "b"}
            mine_a = _allowed("a", keys, live, views) if views["a"] else set()
            mine_b = _allowed("b", keys, live, views) if views["b"] else set()
            assert not mine_a & mine_b, (va, vb)


def test_a_member_with_another_key_set_blocks_starts() -> None:
    keys = _keys(10)
    views = {
        "a": m.View(members=("a", "b"), keys=m.keys_digest(keys)),
        "b": m.View(members=("a", "b"), keys=m.keys_digest(keys[:-1])),
    }
    assert _allowed("a", keys, {"a", "b"}, views) == set()
