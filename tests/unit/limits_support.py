"""Inputs that test appflow's limits: alias bombs, deep nesting, limits set by the operator."""

from __future__ import annotations

import json

import pytest

from appflow import settings

DEEP = 50_000


def alias_bomb(levels: int) -> str:
    """The "billion laughs": a few hundred bytes that stand for 9**levels strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def configmap(name: str, data: dict[str, str]) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    )


def set_limits(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Set APPFLOW_<NAME> for each of VALUES, as an operator would, for this test."""
    for name, value in values.items():
        monkeypatch.setenv(f"APPFLOW_{name.upper()}", value)
    settings.limits.cache_clear()
