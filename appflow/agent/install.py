"""``appflow agent install``: the agent's chart, applied to the cluster it will manage.

The token and the hub are checked first (the hub's CA against the pin, then a dry-run
registration that writes nothing on the hub): a wrong pin, or a token that is unknown, used,
expired or revoked, is an error before anything is created on this cluster either. Then the
agent's Secret (hub URL, CA pin, token) is written and the chart ``appflow/charts/appflow-agent``
is rendered by helm and applied with server-side apply (Namespaces first). The agent
registers when it starts, and forgets the token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from appflow import __version__
from appflow.agent import edge
from appflow.agent.local import KubeLocal
from appflow.agent.runner import register
from appflow.errors import ConfigError, NotFoundError, Where
from appflow.kube.client import KubeCluster
from appflow.model.hub import image_values
from appflow.model.objects import Manifest
from appflow.model.order import plan_stages
from appflow.model.registration import check_pin, parse_token
from appflow.render.helm import helm_template
from appflow.render.types import HelmChartRef, RenderRequest

CHART = "charts/appflow-agent"
RELEASE = "appflow-agent"
FIELD_MANAGER = "appflow-agent-install"

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class InstallOptions:
    token: str
    hub_url: str
    ca_pin: str
    image: str | None = None
    heartbeat_seconds: int = 60
    drift_seconds: int = 30
    backoff_max_seconds: int = 300
    deploy: bool = True
    """False: write the agent's Secret only (the agent runs elsewhere, e.g. `appflow agent run
    --kubeconfig` on a machine next to the cluster)."""

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "heartbeatSeconds": self.heartbeat_seconds,
            "driftSeconds": self.drift_seconds,
            "backoffMaxSeconds": self.backoff_max_seconds,
        }
        if self.image:
            values["image"] = image_values(self.image)
        return values


def chart_dir() -> Path:
    folder = Path(str(resources.files("appflow").joinpath(CHART)))
    if not (folder / "Chart.yaml").is_file():
        raise NotFoundError(f"the agent chart is missing from the package ({folder})")
    return folder


async def render(kube: KubeCluster, options: InstallOptions) -> list[Manifest]:
    folder = chart_dir()
    values = options.values()
    request = RenderRequest(
        app=RELEASE,
        cluster=kube.name,
        kind="helm",
        source_dir=folder,
        source_digest=hashlib.sha256(f"{__version__}{sorted(values.items())}".encode()).hexdigest(),
        capabilities=await kube.capabilities(),
        namespace=edge.AGENT_NAMESPACE,
        helm=HelmChartRef(path=folder),
        release_name=RELEASE,
        values=values,
    )
    return list((await helm_template(request)).objects)


async def install(
    kube: KubeCluster, options: InstallOptions, *, progress: Progress = lambda _: None
) -> str:
    """Check the token with the hub, then install the agent on KUBE; the cluster's name on
    the hub."""
    parse_token(options.token)
    pin = check_pin(options.ca_pin)
    local = KubeLocal(kube)
    existing = await local.read_config()
    if existing is not None and existing.registered:
        raise ConfigError(
            f"this cluster already has an agent registered as {existing.registration.get('cluster')}",
            where=Where(cluster=kube.name),
            hint="remove it from the hub (appflow cluster remove) and delete the Secret"
            f" {edge.AGENT_NAMESPACE}/{edge.CONFIG_SECRET} to register it again",
        )
    config = edge.AgentConfig(hub_url=options.hub_url.rstrip("/"), ca_pin=pin, token=options.token)
    checked = await register(local, config, dry_run=True)
    name = str(checked.registration.get("cluster", ""))
    progress(f"the hub accepts the token: this cluster registers as {name}")
    objects = await render(kube, options) if options.deploy else []
    await local.write_config(config)
    progress(f"wrote {edge.AGENT_NAMESPACE}/{edge.CONFIG_SECRET}")
    for stage in plan_stages(objects):
        for obj in stage.manifests:
            await kube.apply(obj, force=True, field_manager=FIELD_MANAGER)
        progress(f"applied {stage.name}: {len(stage.manifests)} object(s)")
    return name
