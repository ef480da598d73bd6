"""`sandbox up` and `down` as a user runs them: nothing left behind, bad input handled."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from appflow import sandbox as sb
from appflow.cli.main import cli
from appflow.errors import ToolMissingError
from appflow.sandbox.cluster import SandboxCluster
from appflow.sandbox.processes import find_processes, listening_ports

pytestmark = pytest.mark.cluster


def _run(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"APPFLOW_SANDBOX_DIR": str(root)})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_up_three_then_down_leaves_no_process_or_port(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    out = _run(root, "sandbox", "up", "--clusters", "3", "--prefix", "life", "-o", "json")
    infos = json.loads(out)
    assert [i["name"] for i in infos] == ["life-1", "life-2", "life-3"]
    assert [i["labels"]["env"] for i in infos] == ["dev", "test", "prod"]
    assert all(i["status"] == "Running" for i in infos)

    pids = [p.pid for p in find_processes(str(root) + "/")]
    assert len(pids) == 15, "five processes per cluster"
    ports = listening_ports(pids)
    assert len(ports) >= 3 * 4

    # up twice is harmless: nothing restarted
    _run(root, "sandbox", "up", "--clusters", "3", "--prefix", "life")
    assert sorted(p.pid for p in find_processes(str(root) + "/")) == sorted(pids)

    out = _run(root, "sandbox", "down")
    assert out.count("removed") == 3
    assert find_processes(str(root) + "/") == []
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, (
                f"port {port} still accepts connections"
            )
    assert not any(root.iterdir())


def test_busy_ports_are_replaced_on_restart(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    [info] = sb.up(clusters=1, prefix="busy", root=root)
    cluster = SandboxCluster(root / "busy-1")
    old_port = cluster.state().ports["apiserver"]
    sb.stop(["busy-1"], root=root)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", old_port))
    squatter.listen()
    try:
        [restarted] = sb.start(["busy-1"], root=root)
        assert restarted.status == "Running"
        assert cluster.state().ports["apiserver"] != old_port
        assert str(cluster.state().ports["apiserver"]) in cluster.kubeconfig.read_text()
    finally:
        squatter.close()
        sb.down(root=root)
    assert info.name == "busy-1"


def test_down_after_corrupt_state_still_cleans_up(tmp_path: Path) -> None:
    root = tmp_path / "sb"
    sb.up(clusters=1, prefix="crash", root=root)
    cluster = SandboxCluster(root / "crash-1")
    cluster.state_file.write_text("{not json")
    [info] = sb.list_sandbox(root=root)
    assert info.status == "Broken"
    assert "state file is unreadable" in info.problem
    report = sb.down(root=root)
    assert report.removed == ["crash-1"]
    assert find_processes(str(root) + "/") == []


def test_missing_binary_is_named_with_the_command_that_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPFLOW_TOOLS_DIR", str(tmp_path / "no-tools"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(ToolMissingError) as caught:
        sb.up(clusters=1, prefix="none", root=tmp_path / "sb")
    assert "'etcd'" in str(caught.value)
    assert "make tools" in str(caught.value)
    result = CliRunner().invoke(
        cli,
        ["sandbox", "up", "--clusters", "1"],
        env={"APPFLOW_SANDBOX_DIR": str(tmp_path / "sb2")},
    )
    assert result.exit_code == 1
    assert "make tools" in result.output
    assert find_processes(str(tmp_path) + "/") == []
