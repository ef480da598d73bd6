"""AppflowError: where an error happened is added to a copy, never to the error itself."""

from __future__ import annotations

from appflow.errors import AppflowError, ClusterError, ConfigError, WebhookRejectedError, Where


def test_located_returns_a_copy_and_leaves_the_error_alone() -> None:
    err = ConfigError("bad value", where=Where(field="spec.replicas"), hint="fix it")

    first = err.located(app="web", cluster="berlin-1")
    second = err.located(app="web", cluster="paris-1")

    assert err.where == Where(field="spec.replicas")
    assert first.where == Where(app="web", cluster="berlin-1", field="spec.replicas")
    assert second.where.cluster == "paris-1"
    assert type(first) is ConfigError
    assert (first.message, first.hint) == ("bad value", "fix it")
    assert str(first) == "app web, cluster berlin-1, field spec.replicas: bad value (fix it)"


def test_existing_parts_of_the_place_win() -> None:
    err = ClusterError("timed out", where=Where(cluster="berlin-1"))

    assert err.located(cluster="paris-1", app="web").where == Where(app="web", cluster="berlin-1")
    assert err.located(app="web").retryable


def test_a_copy_keeps_the_attributes_of_its_class_and_its_cause() -> None:
    cause = ValueError("bad signature")
    try:
        raise WebhookRejectedError("forged", reason="forged") from cause
    except WebhookRejectedError as raised:
        err = raised

    copy = err.located(app="web")

    assert isinstance(copy, WebhookRejectedError)
    assert copy.reason == "forged"
    assert copy.__cause__ is cause
    assert isinstance(copy, AppflowError)
