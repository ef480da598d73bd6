"""Input a repository controls, against appflow's limits (issue 10, item 11), end to end.

Alias bombs, absurd nesting, huge files, objects and renders are refused with an
error that names the file, the document and the limit, never a MemoryError or a
RecursionError traceback; every limit is the operator's to change. Only the
public ways in are used here (a folder render, app definitions, the CLI).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appflow.errors import ConfigError, RenderError
from appflow.render.plain import load_plain
from appflow.sources.appdef import load_app_definitions
from tests.helpers import run_cli
from tests.unit.limits_support import DEEP, alias_bomb, configmap, set_limits

# -- renders of a folder of manifests ----------------------------------------------------------


def test_a_manifest_holding_an_alias_bomb_fails_its_render(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n"
        + "".join(f"  {line}\n" for line in alias_bomb(8).splitlines())
    )
    with pytest.raises(RenderError, match=r"bomb.yaml:1: document 1 is refused"):
        load_plain(tmp_path)


def test_a_file_over_the_file_limit_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limits(monkeypatch, max_file_bytes="1Ki")
    (tmp_path / "big.yaml").write_text(configmap("big", {"k": "x" * 2000}))
    with pytest.raises(RenderError) as info:
        load_plain(tmp_path)
    assert str(info.value).startswith(
        "big.yaml: the file is 2 KiB; files larger than 1 KiB are refused"
    )


def test_an_object_over_the_api_servers_limit_is_named(tmp_path: Path) -> None:
    # 2 MiB of data: etcd (1.5 MiB) and the API server would refuse the request.
    (tmp_path / "huge.json").write_text(configmap("huge", {"k": "x" * (2 * 1024 * 1024)}))
    with pytest.raises(RenderError) as info:
        load_plain(tmp_path, namespace="web")
    text = str(info.value)
    assert "ConfigMap/web/huge is 2 MiB as JSON" in text
    assert "objects larger than 1.5 MiB are refused" in text


def test_a_render_over_the_total_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limits(monkeypatch, max_render_bytes="10Ki")
    for n in range(20):
        (tmp_path / f"cm-{n:02}.json").write_text(configmap(f"cm-{n}", {"k": "x" * 1000}))
    with pytest.raises(RenderError, match="the objects come to more than 10 KiB"):
        load_plain(tmp_path)


# -- app definitions: appflow add, sync --------------------------------------------------------


def test_an_appflow_yaml_nested_fifty_thousand_levels_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "appflow.yaml").write_text(
        "name: deep\nhelm:\n  values: " + "[" * DEEP + "]" * DEEP
    )
    with pytest.raises(ConfigError) as info:
        load_app_definitions(tmp_path)
    assert str(info.value).startswith("appflow.yaml: the document is refused: it is nested")


def test_an_alias_bomb_in_fleet_yaml_is_refused(tmp_path: Path) -> None:
    bomb = "".join(f"    {line}\n" for line in alias_bomb(9).splitlines())
    (tmp_path / "fleet.yaml").write_text(f"helm:\n  values:\n{bomb}")
    with pytest.raises(ConfigError, match=r"fleet\.yaml:1: the document is refused: it holds more"):
        load_app_definitions(tmp_path)


def test_app_add_of_a_folder_with_a_deeply_nested_file_does_not_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APPFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("APPFLOW_DEBUG", raising=False)
    app = tmp_path / "app"
    app.mkdir()
    (app / "a.yaml").write_text("kind: " + "[" * DEEP + "]" * DEEP)
    (app / "b.yaml").write_text(configmap("fine", {"k": "v"}))
    result = run_cli("app", "add", "deep", "--local", str(app))
    # Discovery does not take the nested file for a manifest; the folder is still an app.
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_a_deeply_nested_manifest_fails_its_render_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: " + "[" * DEEP + "]" * DEEP)
    with pytest.raises(RenderError, match=r"^a.yaml:1:\d+: invalid YAML"):
        load_plain(tmp_path)
