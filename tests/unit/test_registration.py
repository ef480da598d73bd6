"""Registration tokens, names from cluster identities, facts, the CA pin, the agent's rights."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appflow.errors import AuthError, ConfigError
from appflow.hub.agent_tls import issue
from appflow.model import registration as reg

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def token(**changes: object) -> tuple[str, reg.RegistrationToken]:
    text, token_id = reg.new_token()
    _, secret = reg.parse_token(text)
    fields: dict[str, object] = {
        "id": token_id,
        "secret_hash": reg.hash_secret(secret),
        "expires": NOW + timedelta(hours=1),
        "max_uses": 2,
    }
    fields.update(changes)
    return text, reg.RegistrationToken(**fields)  # type: ignore[arg-type]


def test_a_token_is_found_by_its_id_and_kept_as_a_hash_only() -> None:
    text, kept = token()
    token_id, secret = reg.parse_token(text)
    assert text.startswith("aft_")
    assert token_id == kept.id
    data = reg.token_to_data(kept)
    assert secret not in str(data)
    assert reg.token_from_data(data) == kept
    kept.check(secret, now=NOW)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"revoked": True}, "was revoked"),
        ({"expires": NOW}, r"expired at 2026-12-01T12:00:00\+00:00"),
        ({"uses": 2}, "was used 2 times, its limit"),
        ({"uses": 1, "max_uses": 1}, "was already used"),
    ],
)
def test_tokens_that_cannot_register_say_why(changes: dict[str, object], words: str) -> None:
    text, kept = token(**changes)
    _, secret = reg.parse_token(text)
    with pytest.raises(AuthError, match=words):
        kept.check(secret, now=NOW)


def test_a_wrong_secret_or_a_malformed_token_is_refused() -> None:
    _, kept = token()
    with pytest.raises(AuthError, match="is not valid"):
        kept.check("x" * 32, now=NOW)
    for bad in ("", "af_x", "aft_0123456789", "aft_0123456789.short", "aft_XYZ3456789." + "a" * 32):
        with pytest.raises(AuthError, match="not an appflow registration token"):
            reg.parse_token(bad)


def test_batch_tokens_without_a_limit_work_until_they_expire() -> None:
    text, kept = token(max_uses=None, uses=5000)
    kept.check(reg.parse_token(text)[1], now=NOW)
    assert kept.state(NOW + timedelta(hours=2)) == "expired"


def test_durations_and_labels() -> None:
    assert reg.parse_duration("24h") == timedelta(hours=24)
    assert reg.parse_duration("1h30m") == timedelta(minutes=90)
    assert reg.parse_duration("7d") == timedelta(days=7)
    for bad in ("", "1y", "0s", "h"):
        with pytest.raises(ConfigError, match="--ttl"):
            reg.parse_duration(bad)
    reg.check_labels({"site": "berlin", "example.com/tier": "edge"}, what="token")
    with pytest.raises(ConfigError, match="reserved for appflow"):
        reg.check_labels({"appflow.dev/kind": "eve-k"}, what="token")
    with pytest.raises(ConfigError, match="values are up to 63"):
        reg.check_labels({"site": "not valid!"}, what="token")


def test_self_registering_clusters_are_named_from_their_identity() -> None:
    uid = "3f9a1c2b-7d4e-4a5b-9c8d-0123456789ab"
    assert reg.cluster_name_for(uid) == "edge-3f9a1c2b7d4e"
    assert reg.cluster_name_for(uid, prefix="shop") == "shop-3f9a1c2b7d4e"
    with pytest.raises(ConfigError):
        reg.cluster_name_for("abc")


def test_facts_round_trip_and_become_cluster_status() -> None:
    facts = reg.ClusterFacts(
        identity="u",
        kubernetes_version="v1.31.2+k3s1",
        distribution="k3s",
        topology="single-node",
        node_count=1,
        architecture="arm64",
        gpus=2,
        api_versions=("v1", "apps/v1"),
        agent_version="0.1.0",
        age_recipients=("age1xyz",),
    )
    assert reg.ClusterFacts.from_data(facts.to_data()) == facts
    status = facts.cluster_status()
    assert status["distribution"] == "k3s"
    assert status["gpus"] == 2
    assert status["capabilities"] == {"apiVersions": ["v1", "apps/v1"]}
    assert status["ageRecipients"] == ["age1xyz"]


def test_gpu_capacity_sums_every_vendor() -> None:
    nodes = [
        {"status": {"allocatable": {"nvidia.com/gpu": "2", "cpu": "4"}}},
        {"status": {"allocatable": {"amd.com/gpu": "1"}}},
        {"status": {}},
    ]
    assert reg.gpu_capacity(nodes) == 3


def test_the_ca_pin_is_of_the_key_and_checked() -> None:
    first, ca_key = issue(["127.0.0.1"])
    again, _ = issue(["hub.example.com"], ca_key_pem=ca_key, ca_pem=first.ca)
    other, _ = issue(["127.0.0.1"])
    assert first.pin == again.pin == reg.ca_pin(first.ca)
    assert other.pin != first.pin
    assert reg.check_pin(first.pin.upper()) == first.pin
    with pytest.raises(ConfigError, match="sha256:"):
        reg.check_pin("abc")


def test_the_agent_may_write_only_status_and_its_own_lease_and_token() -> None:
    rules = reg.agent_rules()
    writes = {
        (r["resources"][0], verb)
        for r in rules
        for verb in r["verbs"]
        if verb in ("create", "update", "patch", "delete")
    }
    assert writes == {
        ("appflowdeployments/status", "patch"),
        ("appflowdeployments/status", "update"),
        ("leases", "patch"),
        ("leases", "update"),
        ("serviceaccounts/token", "create"),
    }
    named = {r["resources"][0]: r.get("resourceNames") for r in rules}
    assert named["leases"] == [reg.AGENT_NAME]
    assert named["serviceaccounts/token"] == [reg.AGENT_NAME]
    assert not any(
        "secrets" in r["resources"] or "appflowcontents" in r["resources"] for r in rules
    )


def registered(*, identity: str, token_id: str) -> dict[str, object]:
    return {
        "metadata": {
            "annotations": {
                reg.ANNOTATION_IDENTITY: identity,
                reg.ANNOTATION_REGISTERED_WITH: token_id,
            }
        },
    }


UNRENEWED: dict[str, object] = {"spec": {"leaseDurationSeconds": 60}}


def test_a_retry_after_a_lost_answer_is_the_same_cluster_with_the_same_token_unheard_of() -> None:
    text, used = token(uses=1, max_uses=1)
    _, secret = reg.parse_token(text)
    cluster = registered(identity="uid-1", token_id=used.id)
    assert reg.answer_lost(cluster, UNRENEWED, token=used.id, identity="uid-1")
    # Its own use counted already: the used-up token still serves it, and only it.
    used.check(secret, now=NOW, again=True)
    with pytest.raises(AuthError, match="was already used"):
        used.check(secret, now=NOW)
    # Another cluster, another token, a cluster never registered, or one whose agent renewed
    # its Lease (it got its credential: a replay must not mint another): a new registration.
    assert not reg.answer_lost(cluster, UNRENEWED, token=used.id, identity="uid-2")
    assert not reg.answer_lost(cluster, UNRENEWED, token="other", identity="uid-1")
    assert not reg.answer_lost(None, None, token=used.id, identity="uid-1")
    renewed = {"spec": {"renewTime": "2026-12-01T12:00:00.000000Z"}}
    assert not reg.answer_lost(cluster, renewed, token=used.id, identity="uid-1")
    assert not reg.answer_lost({"metadata": {}}, UNRENEWED, token=used.id, identity="uid-1")


def test_a_retry_is_still_refused_when_the_token_expired_or_was_revoked() -> None:
    for changes in ({"expires": NOW}, {"revoked": True}):
        text, kept = token(uses=1, max_uses=1, **changes)
        with pytest.raises(AuthError):
            kept.check(reg.parse_token(text)[1], now=NOW, again=True)
