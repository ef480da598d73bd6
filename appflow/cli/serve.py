"""`appflow serve`, `appflow watch` and `appflow events`: appflow as a long-running service."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import signal
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click
import jsonschema
import yaml

from appflow.cli.common import collect_less, engine_session, store_session
from appflow.cli.output import console, emit, err_console, output_option
from appflow.engine.daemon import Daemon, DaemonOptions
from appflow.engine.engine import AppSyncReport, Engine
from appflow.errors import AppflowError, ConfigError, Where
from appflow.model.appdef import AppDefinition
from appflow.model.plan import Action
from appflow.model.records import AppRecord
from appflow.paths import cache_dir
from appflow.sources.appdef import load_app_definitions

NO_TOKEN_OVERRIDE = "insecureApiWithoutTokenOnNetwork"
"""The configuration key that lets requireToken: false serve the API beyond loopback."""


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    daemon: DaemonOptions = field(default_factory=DaemonOptions)
    max_body_bytes: int = 1_048_576
    body_timeout_seconds: float = 10.0
    require_token: bool = True
    insecure_no_token_on_network: bool = False


def is_loopback(host: str) -> bool:
    """Whether HOST (a listen address) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def load_serve_config(path: Path | None, overrides: dict[str, Any]) -> ServeConfig:
    """The file (validated against serve.schema.json: unknown keys are refused), then flags."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(
                f"cannot read the configuration: {err}", where=Where(file=str(path))
            ) from err
        if not isinstance(loaded, dict):
            raise ConfigError("the configuration must be a mapping", where=Where(file=str(path)))
        schema = yaml.safe_load(
            resources.files("appflow.schemas").joinpath("serve.schema.json").read_text()
        )
        errors = sorted(
            jsonschema.Draft202012Validator(schema).iter_errors(loaded), key=lambda e: list(e.path)
        )
        if errors:
            lines = "; ".join(line for e in errors for line in _schema_problems(e))
            raise ConfigError(f"invalid configuration: {lines}", where=Where(file=str(path)))
        data = loaded
    data.update({k: v for k, v in overrides.items() if v is not None})
    host, _, port = str(data.get("listen", "127.0.0.1:8080")).rpartition(":")
    host = host or "127.0.0.1"
    require_token = bool(data.get("requireToken", True))
    override = bool(data.get(NO_TOKEN_OVERRIDE, False))
    if not require_token and not is_loopback(host) and not override:
        # Anyone who can reach the port could then read the fleet and trigger syncs.
        raise ConfigError(
            f"requireToken: false serves the API without authentication, and {host} is "
            "reachable from other machines",
            where=Where(file=str(path) if path else None, field="requireToken"),
            hint="listen on 127.0.0.1, or keep requireToken: true and use `appflow token "
            f"create`; to accept the risk anyway, set {NO_TOKEN_OVERRIDE}: true",
        )
    return ServeConfig(
        host=host,
        port=int(port),
        daemon=DaemonOptions(
            workers=int(data.get("workers", 4)),
            resync_seconds=float(data.get("resyncSeconds", 600)),
            poll_seconds=float(data["pollSeconds"]) if data.get("pollSeconds") else None,
            drift=bool(data.get("drift", True)),
            shutdown_grace=float(data.get("shutdownGraceSeconds", 60)),
        ),
        max_body_bytes=int(data.get("maxBodyBytes", 1_048_576)),
        body_timeout_seconds=float(data.get("bodyTimeoutSeconds", 10)),
        require_token=require_token,
        insecure_no_token_on_network=override,
    )


def _schema_problems(error: jsonschema.ValidationError) -> list[str]:
    """One `field.path: problem` line per problem; an unknown key is named by its own path
    (jsonschema reports it at its parent, which says nothing about which key it was)."""
    where = ".".join(map(str, error.path))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = sorted(schema.get("properties") or {})
        return [
            f"{where + '.' if where else ''}{key}: unknown key (known: {', '.join(known)})"
            for key in sorted(error.instance)
            if key not in known
        ]
    return [f"{where or '(top)'}: {error.message}"]


async def _serve(engine: Engine, config: ServeConfig) -> None:
    import uvicorn

    from appflow.engine.catalog.live import poll_catalog_repos, watch_catalog
    from appflow.engine.catalog.publisher import CatalogPublisher
    from appflow.server.app import create_app
    from appflow.server.catalog_repo import catalog_router
    from appflow.server.local import local_socket
    from appflow.server.metrics import Metrics
    from appflow.sources.catalog import default_catalog_dir

    metrics = Metrics()
    daemon = Daemon(engine, options=config.daemon, on_sync=metrics.observe_report)
    catalog_dir = default_catalog_dir()
    app = create_app(
        store=engine.store,
        triggers=daemon,
        max_body_bytes=config.max_body_bytes,
        body_timeout_seconds=config.body_timeout_seconds,
        require_token=config.require_token,
        metrics=metrics,
        engine=engine,
        catalog_dir=catalog_dir,
    )
    # The dashboard's event streams end when the daemon stops.
    app.state.stopping = daemon.stopping
    collect_less()  # everything the daemon imports is loaded by now

    class Server(uvicorn.Server):
        # The daemon owns SIGTERM/SIGINT: it stops the HTTP server itself.
        def install_signal_handlers(self) -> None:
            return None

    # The catalog, served as a Helm repository at /catalog and kept live:
    # edits under catalog/ and new versions in remote repositories reach the
    # installs whose upgrade policy is auto.
    publisher = CatalogPublisher(catalog_dir, cache_dir() / "catalog" / "published")
    app.include_router(catalog_router(publisher), prefix="/catalog")
    server = Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="off",
            # Open dashboard streams must not hold a SIGTERM up.
            timeout_graceful_shutdown=5,
        )
    )

    async def http() -> None:
        await server.serve()

    async def catalog_files() -> None:
        await watch_catalog(engine, catalog_dir, stop=daemon.stopping)

    async def catalog_repos() -> None:
        await poll_catalog_repos(engine, catalog_dir, stop=daemon.stopping)

    async def cli_syncs() -> None:
        # `appflow sync` of this home hands its syncs to this daemon (appflow.server.local).
        async with local_socket(engine):
            await daemon.stopping.wait()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)
    err_console.print(
        f"appflow serve: listening on http://{config.host}:{config.port} "
        f"(dashboard: http://{config.host}:{config.port}/ui/)",
        highlight=False,
    )
    if not config.require_token and not is_loopback(config.host):
        err_console.print(
            f"[bold red]WARNING: the API at http://{config.host}:{config.port}/api/v1 needs no "
            f"token ({NO_TOKEN_OVERRIDE}: true): anyone who reaches this port can read the "
            "fleet and start syncs[/]",
            highlight=False,
        )
    try:
        await daemon.run(
            extra={
                "http": http,
                "catalog-watch": catalog_files,
                "catalog-poll": catalog_repos,
                "cli-syncs": cli_syncs,
            }
        )
    finally:
        server.should_exit = True


async def _serve_hub(config: ServeConfig) -> None:
    """`appflow serve --hub`: the same webhooks, API and dashboard over a hub's resources.

    Nothing syncs in this process: webhooks poke the repository's owner, API actions become
    requests the apps' owners run (see ``appflow.hub.actions``), reads go through HubStore.
    """
    import uvicorn

    from appflow.cli.common import chosen_hub
    from appflow.hub.actions import HubTriggers
    from appflow.hub.backend import open_hub_engine
    from appflow.server.app import create_app
    from appflow.server.metrics import Metrics
    from appflow.server.webhooks import read_webhook_secret
    from appflow.sources.catalog import default_catalog_dir

    target = chosen_hub()
    assert target is not None
    engine = open_hub_engine(target)
    hub = engine.hub

    def read_secret(ref: str) -> bytes:
        return hub.webhook_secret(ref) if ref.startswith("secret:") else read_webhook_secret(ref)

    app = create_app(
        store=hub,
        triggers=HubTriggers(engine),
        max_body_bytes=config.max_body_bytes,
        require_token=config.require_token,
        metrics=Metrics(),
        engine=engine,
        catalog_dir=default_catalog_dir(),
        read_secret=read_secret,
    )
    stopping = asyncio.Event()
    app.state.stopping = stopping
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )
    err_console.print(
        f"appflow serve: the hub {target.describe()} on http://{config.host}:{config.port} "
        f"(dashboard: http://{config.host}:{config.port}/ui/)",
        highlight=False,
    )
    try:
        await server.serve()
    finally:
        stopping.set()
        engine.close()


@click.command()
@click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--listen", help="host:port (default 127.0.0.1:8080).")
@click.option("--workers", type=int)
@click.option("--resync", "resync", type=float, help="Seconds between full resyncs (default 600).")
@click.option(
    "--poll",
    "poll",
    type=float,
    help="Seconds between repository polls (overrides each repo's interval).",
)
@click.option(
    "--hub",
    "hub_ref",
    metavar="KUBECONFIG[:CONTEXT]",
    help="Serve a hub's webhooks, API and dashboard (its controllers do the work).",
)
def serve(
    config_file: Path | None,
    listen: str | None,
    workers: int | None,
    resync: float | None,
    poll: float | None,
    hub_ref: str | None,
) -> None:
    """Run appflow as a service: poll and webhooks, drift and self-heal, HTTP API and metrics."""
    from appflow.cli import common

    config = load_serve_config(
        config_file,
        {"listen": listen, "workers": workers, "resyncSeconds": resync, "pollSeconds": poll},
    )
    if hub_ref:
        common.hub_flag = hub_ref
    if common.chosen_hub() is not None:
        asyncio.run(_serve_hub(config))
        return
    with engine_session() as engine:
        asyncio.run(_serve(engine, config))


NAMED_CHANGES = 3
"""Up to this many objects of one action are named in a watch line; more are counted."""


def _summary(report: AppSyncReport) -> str:
    """One line per sync for `appflow watch`: per cluster its state and what changed, e.g.
    `dev-1: Ready (configured ConfigMap/web/settings)`; unchanged objects are left out."""
    parts = []
    for r in report.results:
        changed = []
        for action in Action:
            if action is Action.UNCHANGED:
                continue
            refs = [str(c.ref) for c in r.plan.of(action)]
            if len(refs) > NAMED_CHANGES:
                changed.append(f"{len(refs)} {action.value}")
            elif refs:
                changed.append(f"{action.value} {', '.join(refs)}")
        text = "; ".join(changed)
        parts.append(f"{r.cluster}: {r.state}" + (f" ({text})" if text else ""))
    for cluster, err in report.unreachable.items():
        parts.append(f"{cluster}: unreachable ({err.message})")
    for cluster, err in report.failed.items():
        parts.append(f"{cluster}: failed ({err.message})")
    for err in report.blocked:
        parts.append(f"refused: {err}")
    return "; ".join(parts) or "nothing to do"


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    help="Only these clusters (default: each app's targets).",
)
@click.option(
    "--debounce", type=float, default=0.5, show_default=True, help="Seconds of quiet before a sync."
)
@click.option(
    "--poll",
    is_flag=True,
    help="Look at file times instead of the operating system's notifications "
    "(network or container-mounted folders); chosen by itself when the system refuses.",
)
def watch(path: Path, clusters: tuple[str, ...], debounce: float, poll: bool) -> None:
    """Development mode: sync the apps under PATH each time a file in them is saved."""
    from appflow.sources.changes import file_changes

    root = path.resolve()

    async def sync(engine: Engine, d: AppDefinition) -> None:
        engine.store.put_app(
            AppRecord(name=d.name, source="local", local_path=str(root), path=d.path)
        )
        try:
            line = _summary(await engine.sync(d.name, clusters=clusters, trigger="watch"))
        except AppflowError as err:
            # A broken file or an unreachable cluster is reported; the next save retries.
            line = f"refused: {err}" if isinstance(err, ConfigError) else f"failed: {err}"
        console.print(f"{time.strftime('%H:%M:%S')} {d.name}: {line}", highlight=False)

    async def loop() -> None:
        saved: asyncio.Queue[set[Path]] = asyncio.Queue()

        async def watch_files() -> None:
            async for changes in file_changes(root, debounce_ms=int(debounce * 1000), poll=poll):
                saved.put_nowait(changes)

        # The watch starts before the first syncs (awatch sets it up before its first
        # await): a file saved while they run is not missed.
        watcher = asyncio.create_task(watch_files(), name="watch-files")
        await asyncio.sleep(0)
        with engine_session() as engine:
            definitions = load_app_definitions(root)
            console.print(
                f"watching {root}: {', '.join(d.name for d in definitions)}", highlight=False
            )
            for d in definitions:
                await sync(engine, d)
            while True:
                getter = asyncio.ensure_future(saved.get())
                await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    watcher.result()  # the watch ended: raise why
                    return
                changes = getter.result()
                while not saved.empty():  # saves made during the last sync: one sync for all
                    changes |= saved.get_nowait()
                touched = {p.resolve() for p in changes}
                try:
                    definitions = load_app_definitions(root)
                except AppflowError as err:
                    console.print(f"{time.strftime('%H:%M:%S')} refused: {err}", highlight=False)
                    continue
                for d in definitions:
                    folder = (root / d.path).resolve()
                    if any(folder == t or folder in t.parents for t in touched):
                        await sync(engine, d)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(loop())


@click.command()
@click.option("--app", "app")
@click.option("--cluster", "cluster")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new events (with -o json: one JSON object per line).",
)
@output_option
def events(app: str | None, cluster: str | None, limit: int, follow: bool, output: str) -> None:
    """What happened: syncs, failures, drift, self-heal, rollout steps."""

    def rows(data: list[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                d["time"],
                d["kind"],
                d["app"] or "-",
                d["cluster"] or "-",
                d["trigger"] or "-",
                d["outcome"] or "-",
                d["message"],
            ]
            for d in data
        ]

    def as_data(records: list[Any]) -> list[dict[str, Any]]:
        return [e.to_data() for e in records]

    columns = ("TIME", "KIND", "APP", "CLUSTER", "TRIGGER", "OUTCOME", "MESSAGE")

    def show(records: list[Any]) -> None:
        if follow and output == "json":
            # A stream of arrays cannot be parsed as it comes: one event per line (JSON Lines).
            for item in as_data(records):
                click.echo(json.dumps(item, default=str))
        else:
            emit(as_data(records), output=output, columns=columns, rows=rows)

    with store_session() as store:
        found = store.list_events(app=app, cluster=cluster, limit=limit)
        show(found)
        last = found[-1].id if found else 0
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow, as kubectl -w
            while follow:
                time.sleep(1.0)
                new = store.list_events(app=app, cluster=cluster, since_id=last, limit=1000)
                if new:
                    show(new)
                    last = new[-1].id
