"""The health stage's memo of assessments by (uid, resourceVersion): it skips an
assessment only for an object read back at the version it was assessed at."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from appflow.engine.stages.health import HealthMemo
from appflow.model.health import HealthStatus, assess

FIXTURES = Path(__file__).parent / "testdata" / "health"


def _deployment(fixture: str, *, uid: str, version: str) -> dict[str, Any]:
    live: dict[str, Any] = yaml.safe_load((FIXTURES / fixture).read_text())
    live["metadata"].update(uid=uid, resourceVersion=version)
    return live


def test_same_uid_and_version_is_answered_from_the_memo() -> None:
    memo = HealthMemo()
    live = _deployment("deployment-progressing.yaml", uid="u-1", version="7")
    first = memo.assess(live)
    again = memo.assess(copy.deepcopy(live))
    assert first == again == assess(live)
    assert first.status is HealthStatus.PROGRESSING
    assert memo.answered == 1


def test_a_new_resource_version_is_assessed_again() -> None:
    memo = HealthMemo()
    memo.assess(_deployment("deployment-progressing.yaml", uid="u-1", version="7"))
    # The controller finished the rollout: the status changed, so did the version.
    done = memo.assess(_deployment("deployment-available.yaml", uid="u-1", version="8"))
    assert done.status is HealthStatus.HEALTHY
    assert memo.answered == 0


def test_a_recreated_object_is_assessed_again() -> None:
    memo = HealthMemo()
    memo.assess(_deployment("deployment-available.yaml", uid="u-1", version="7"))
    # Deleted and created again: a new uid, whatever its version says.
    fresh = memo.assess(_deployment("deployment-progressing.yaml", uid="u-2", version="7"))
    assert fresh.status is HealthStatus.PROGRESSING
    assert memo.answered == 0


def test_an_object_without_uid_or_version_is_assessed_each_time() -> None:
    memo = HealthMemo()
    for fixture, status in (
        ("deployment-progressing.yaml", HealthStatus.PROGRESSING),
        ("deployment-available.yaml", HealthStatus.HEALTHY),
    ):
        live = _deployment(fixture, uid="u-1", version="7")
        del live["metadata"]["resourceVersion"]  # not as the API server stored it
        assert memo.assess(live).status is status
    assert memo.assess(None).status is HealthStatus.MISSING
    assert memo.answered == 0


def test_the_memo_is_bounded() -> None:
    memo = HealthMemo()
    memo.MAX_OBJECTS = 2
    for version in ("1", "2", "3"):
        memo.assess(_deployment("deployment-available.yaml", uid="u-1", version=version))
    # The oldest went first: version 1 is assessed again, 3 is still known.
    memo.assess(_deployment("deployment-available.yaml", uid="u-1", version="1"))
    assert memo.answered == 0
    memo.assess(_deployment("deployment-available.yaml", uid="u-1", version="1"))
    assert memo.answered == 1
