"""Which backend a command uses: standalone SQLite, or a hub (docs/hub.md §9).

Chosen once per command: ``--hub KUBECONFIG[:CONTEXT]``, else ``APPFLOW_HUB``, else the context
``appflow hub use`` saved in the data folder, else standalone. The workspace (the hub namespace
holding the apps and clusters) is ``APPFLOW_HUB_WORKSPACE``, else the saved one, else
``appflow``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from appflow.errors import ConfigError, Where
from appflow.hub.actions import HubEngine
from appflow.hub.store import HubFiles, HubStore
from appflow.kube.client import Connection, KubeCluster
from appflow.model.hub import DEFAULT_WORKSPACE, DNS_LABEL, ENV_HUB, ENV_WORKSPACE, HUB_CONTEXT_FILE
from appflow.paths import data_dir


@dataclass(frozen=True, kw_only=True)
class HubTarget:
    """A hub to talk to: its kubeconfig, context and workspace."""

    kubeconfig: Path | None
    """None: in-cluster (the pod's ServiceAccount)."""
    context: str | None = None
    workspace: str = DEFAULT_WORKSPACE

    def describe(self) -> str:
        where = f"{self.kubeconfig or IN_CLUSTER}{':' + self.context if self.context else ''}"
        return f"{where} (workspace {self.workspace})"


IN_CLUSTER = "in-cluster"
"""As --hub: the pod's own ServiceAccount (serve --hub in the hub's chart)."""


def parse_hub(text: str, *, workspace: str | None = None, option: str = "--hub") -> HubTarget:
    """KUBECONFIG[:CONTEXT] (or ``in-cluster``) as a HubTarget; the file must exist."""
    chosen = workspace or os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE
    if text == IN_CLUSTER:
        return HubTarget(kubeconfig=None, workspace=chosen)
    path, context = Path(text), None
    if not path.is_file() and ":" in text:
        head, _, tail = text.rpartition(":")
        path, context = Path(head), tail or None
    if not path.is_file():
        raise ConfigError(
            f"{option} {text!r}: no such kubeconfig file",
            where=Where(field=option),
            hint="give KUBECONFIG or KUBECONFIG:CONTEXT",
        )
    if not re.fullmatch(DNS_LABEL, chosen):
        raise ConfigError(
            f"workspace {chosen!r} is not a namespace name", where=Where(field="workspace")
        )
    return HubTarget(kubeconfig=path.resolve(), context=context, workspace=chosen)


def _saved_path() -> Path:
    return data_dir() / HUB_CONTEXT_FILE


def saved_hub() -> HubTarget | None:
    """The context `appflow hub use` saved (None: standalone)."""
    path = _saved_path()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return HubTarget(
            kubeconfig=Path(data["kubeconfig"]),
            context=data.get("context") or None,
            workspace=os.environ.get(ENV_WORKSPACE) or data.get("workspace") or DEFAULT_WORKSPACE,
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"the saved hub context is unreadable: {err}",
            where=Where(file=str(path)),
            hint="save it again with `appflow hub use`, or `appflow hub use --standalone`",
        ) from err


def save_hub(target: HubTarget | None) -> Path:
    """Remember TARGET for later commands (None: standalone again)."""
    path = _saved_path()
    if target is None:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "kubeconfig": str(target.kubeconfig),
                "context": target.context,
                "workspace": target.workspace,
            },
            indent=2,
        )
        + "\n"
    )
    return path


def chosen_hub(flag: str | None) -> HubTarget | None:
    """The hub this command talks to (None: standalone)."""
    if flag:
        return parse_hub(flag)
    env = os.environ.get(ENV_HUB)
    if env:
        return parse_hub(env, option=ENV_HUB)
    return saved_hub()


def _kube(target: HubTarget) -> KubeCluster:
    return KubeCluster(Connection(name="hub", kubeconfig=target.kubeconfig, context=target.context))


def _files(target: HubTarget) -> HubFiles:
    # Kubeconfigs from the hub's Secrets (for diffs) are credentials: the data folder, 0700.
    return HubFiles(root=data_dir() / "hub" / target.workspace, local_folders="upload")


def open_hub_store(target: HubTarget, *, push_only: bool = False) -> HubStore:
    return HubStore(
        _kube(target),
        workspace=target.workspace,
        writer="cli",
        files=_files(target),
        push_only=push_only,
    )


def open_hub_engine(target: HubTarget) -> HubEngine:
    user = os.environ.get("USER") or "cli"
    return HubEngine(
        open_hub_store(target),
        push_view=open_hub_store(target, push_only=True),
        requested_by=f"cli:{user}",
    )
