"""`appflow catalog`: the marketplace: list, show, install, upgrade, uninstall, lint, serve, repos."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

from appflow.cli.common import engine_session, run, store_session
from appflow.cli.output import console, emit, err_console, output_option
from appflow.cli.reports import print_report, report_data
from appflow.engine.catalog import entries as catalog_entries
from appflow.engine.catalog import installs, values
from appflow.engine.catalog.installs import InstallRequest, UpgradeRequest
from appflow.engine.catalog.repos import (
    add_catalog_repo,
    refresh_catalog_repos,
    remove_catalog_repo,
)
from appflow.engine.catalog.source import catalog_data
from appflow.engine.catalog.values import ValuesInput
from appflow.engine.engine import AppSyncReport
from appflow.engine.stages.types import SyncOptions
from appflow.errors import ConfigError
from appflow.model.catalog import CatalogEntry, question_defaults, shown, value_at
from appflow.model.giturl import redact_url
from appflow.model.records import (
    UPGRADE_POLICIES,
    CatalogRepoRecord,
    TargetChoice,
    UpgradePolicy,
)
from appflow.model.values import merge_values
from appflow.paths import cache_dir
from appflow.sources import catalog as source

F = Callable[..., Any]


def _catalog_repos() -> list[CatalogRepoRecord]:
    with store_session() as store:
        return store.list_catalog_repos()


def _catalog_dir(value: Path | None) -> Path:
    return value if value is not None else source.default_catalog_dir()


catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The catalog folder (default: $APPFLOW_CATALOG_DIR, the checkout's catalog/, "
    "or the data folder's catalog/).",
)


@click.group()
def catalog() -> None:
    """The marketplace catalog of Helm charts: browse, install, upgrade, serve."""


def _entry_row(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "displayName": entry.display_name,
        "category": entry.category,
        "version": entry.latest or (entry.versions[0] if entry.versions else ""),
        "appVersion": entry.app_version,
        "constraint": entry.version,
        "source": entry.repo or entry.chart.kind,
        "description": entry.description,
        "keywords": list(entry.keywords),
    }


def list_entries(
    catalog_dir: Path, *, category: str | None, search: str | None
) -> list[dict[str, Any]]:
    """The rows of `catalog list` (also what the benchmark times)."""
    entries, notes = catalog_entries.load_entries(catalog_dir, repos=_catalog_repos())
    for note in notes:
        err_console.print(f"[yellow]warning:[/] {note}", highlight=False)
    return [_entry_row(e) for e in entries if e.matches(category=category, search=search)]


@catalog.command("list")
@click.option("--category", help="Only apps of this category.")
@click.option("--search", help="Only apps whose name, description or keywords contain this.")
@catalog_option
@output_option
def catalog_list(
    category: str | None, search: str | None, catalog_dir: Path | None, output: str
) -> None:
    """List the catalog's apps (local entries and charts of catalog repositories)."""
    rows = list_entries(_catalog_dir(catalog_dir), category=category, search=search)
    emit(
        rows,
        output=output,
        columns=("NAME", "VERSION", "CATEGORY", "SOURCE", "DESCRIPTION"),
        rows=lambda d: [
            [x["name"], x["version"] or "-", x["category"], x["source"], x["description"][:70]]
            for x in d
        ],
    )


@catalog.command("show")
@click.argument("name")
@click.option("--version", help="Version or constraint (default: the highest allowed).")
@click.option("--values", "what", flag_value="values", help="Print the chart's default values.")
@click.option("--schema", "what", flag_value="schema", help="Print the values schema.")
@click.option("--readme", "what", flag_value="readme", help="Print the README.")
@click.option("--questions", "what", flag_value="questions", help="Print the questions.")
@catalog_option
@click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
def catalog_show(
    name: str, version: str | None, what: str | None, catalog_dir: Path | None, output: str
) -> None:
    """Show catalog app NAME (or REPO/CHART): metadata, versions, values, schema, README."""
    repos = _catalog_repos()
    entry = catalog_entries.find_entry(_catalog_dir(catalog_dir), name, repos=repos)
    if what == "readme" and entry.readme:
        click.echo(entry.readme.rstrip("\n"))
        return
    if what == "questions":
        emit({"questions": [dict(q) for q in entry.questions]}, output=output)
        return
    if what in ("values", "schema", "readme"):
        resolution = run(catalog_entries.resolve(entry, version=version, repos=repos))
        chart_dir, _ = run(catalog_entries.fetch_chart(resolution, repos=repos))
        if what == "values":
            text = (
                (chart_dir / "values.yaml").read_text()
                if (chart_dir / "values.yaml").is_file()
                else ""
            )
            click.echo(text.rstrip("\n"))
        elif what == "schema":
            schema = values.values_schema(entry, chart_dir)
            if schema is None:
                raise ConfigError(f"{name} has no values schema (neither the entry nor the chart)")
            click.echo(json.dumps(schema, indent=2))
        else:
            readme = chart_dir / "README.md"
            click.echo(
                readme.read_text().rstrip("\n") if readme.is_file() else f"{name} has no README"
            )
        return
    resolution = run(catalog_entries.resolve(entry, version=version, repos=repos))
    data = {
        **_entry_row(entry),
        "resolved": resolution.version,
        "versions": list(entry.versions),
        "home": entry.home,
        "icon": entry.icon,
        "maintainers": [dict(m) for m in entry.maintainers],
        "upgradePolicy": entry.upgrade_policy,
        "minKubeVersion": entry.min_kube_version,
        "chart": {k: v for k, v in vars(entry.chart).items() if v is not None},
        "questions": [str(q["variable"]) for q in entry.questions],
    }
    emit(data, output=output)


def _targets(
    clusters: tuple[str, ...], group: str | None, selector: str | None, all_clusters: bool
) -> TargetChoice:
    choice = TargetChoice(clusters=clusters, group=group, selector=selector, all=all_clusters)
    choice.check()
    return choice


def _prompt(entry: CatalogEntry, set_values: tuple[str, ...]) -> tuple[str, ...]:
    """Ask the entry's questions (those shown for the answers so far); answers as --set items."""
    answers = question_defaults(entry.questions)
    extra: list[str] = []
    for question in entry.questions:
        if not shown(question, answers):
            continue
        variable = str(question["variable"])
        label = str(question.get("label") or variable)
        kind = str(question.get("type", "string"))
        default = value_at(answers, variable)
        value: Any
        if kind == "boolean":
            value = click.confirm(label, default=bool(default))
        elif kind == "enum":
            value = click.prompt(
                label,
                type=click.Choice([str(o) for o in question.get("options") or []]),
                default=default,
            )
        elif kind == "int":
            value = click.prompt(label, type=int, default=default)
        else:
            value = click.prompt(
                label,
                default=default if default is not None else "",
                hide_input=kind == "password",
                show_default=kind != "password",
            )
        answers = merge_values(answers, _nested(variable, value))
        text = str(value).lower() if isinstance(value, bool) else str(value)
        extra.append(f"{variable}={text.replace(',', chr(92) + ',')}")
    # Explicit --set wins over answers.
    return (*extra, *set_values)


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    node: Any = value
    for key in reversed(dotted.split(".")):
        node = {key: node}
    return cast(dict[str, Any], node)


def _finish(report: AppSyncReport, wait: bool, output: str, extra: dict[str, Any]) -> None:
    if output == "table":
        print_report(report.summary())
    else:
        emit({**extra, **report_data(report.summary())}, output=output)
    if not report.ok or (wait and not report.ready):
        sys.exit(1)


_values_options: list[F] = [
    click.option("--set", "set_values", multiple=True, help="key.path=value (helm syntax)."),
    click.option(
        "--set-string", "set_strings", multiple=True, help="Like --set, values as strings."
    ),
    click.option(
        "-f",
        "--values",
        "values_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A YAML values file (repeatable; later files win).",
    ),
    click.option("--wait", is_flag=True, help="Wait until Ready; exit 1 if not within --timeout."),
    click.option("--timeout", type=float, default=300.0, show_default=True),
    click.option("--policy", type=click.Choice(UPGRADE_POLICIES), help="Upgrade policy."),
    catalog_option,
    output_option,
]


def _with_values_options(f: F) -> F:
    for option in reversed(_values_options):
        f = option(f)
    return f


@catalog.command("install")
@click.argument("entry")
@click.option("--name", help="The app's name (default: the entry's).")
@click.option("--version", help="Version or constraint, e.g. 2.x or '>=1.2 <2'.")
@click.option("--cluster", "clusters", multiple=True, help="A target cluster (repeatable).")
@click.option("--group", help="A cluster group.")
@click.option("--selector", "-l", "selector", help="Clusters with these labels, e.g. site=berlin.")
@click.option("--all", "all_clusters", is_flag=True, help="Every registered cluster.")
@click.option("-n", "--namespace", help="Namespace (default: the app's name).")
@click.option("-i", "--interactive", is_flag=True, help="Ask the entry's questions.")
@_with_values_options
def catalog_install(
    entry: str,
    name: str | None,
    version: str | None,
    clusters: tuple[str, ...],
    group: str | None,
    selector: str | None,
    all_clusters: bool,
    namespace: str | None,
    interactive: bool,
    set_values: tuple[str, ...],
    set_strings: tuple[str, ...],
    values_files: tuple[Path, ...],
    wait: bool,
    timeout: float,
    policy: str | None,
    catalog_dir: Path | None,
    output: str,
) -> None:
    """Install catalog app ENTRY on the chosen clusters; values are checked on every target
    before any cluster is touched."""
    targets = _targets(clusters, group, selector, all_clusters)
    directory = _catalog_dir(catalog_dir)
    if interactive:
        set_values = _prompt(
            catalog_entries.find_entry(directory, entry, repos=_catalog_repos()), set_values
        )
    request = InstallRequest(
        entry=entry,
        name=name,
        version=version,
        targets=targets,
        namespace=namespace,
        values=ValuesInput(files=values_files, set_values=set_values, set_strings=set_strings),
        upgrade_policy=cast(UpgradePolicy | None, policy),
        catalog_dir=directory,
        options=SyncOptions(wait=wait, wait_timeout=timeout),
    )
    with engine_session() as engine, err_console.status("installing...") as status:
        planned, report = run(installs.install(engine, request, progress=status.update))
    if output == "table":
        console.print(
            f"installing {planned.resolution.describe()} as {planned.record.name} on "
            f"{', '.join(c.name for c in planned.targets)}",
            highlight=False,
        )
    _finish(report, wait, output, {"version": planned.resolution.version})


@catalog.command("upgrade")
@click.argument("name")
@click.option("--version", help="A new version or constraint (default: the install's).")
@click.option("--reset-values", is_flag=True, help="Drop the values of earlier installs.")
@_with_values_options
def catalog_upgrade(
    name: str,
    version: str | None,
    reset_values: bool,
    set_values: tuple[str, ...],
    set_strings: tuple[str, ...],
    values_files: tuple[Path, ...],
    wait: bool,
    timeout: float,
    policy: str | None,
    catalog_dir: Path | None,
    output: str,
) -> None:
    """Upgrade install NAME to the highest version its constraint allows (or --version), with
    its values plus any new ones; checked on every target first."""
    request = UpgradeRequest(
        name=name,
        version=version,
        values=ValuesInput(files=values_files, set_values=set_values, set_strings=set_strings),
        reset_values=reset_values,
        upgrade_policy=cast(UpgradePolicy | None, policy),
        catalog_dir=_catalog_dir(catalog_dir),
        options=SyncOptions(wait=wait, wait_timeout=timeout),
    )
    with engine_session() as engine, err_console.status("upgrading...") as status:
        before = catalog_data(engine.store.get_app(name)).version
        planned, report = run(installs.upgrade(engine, request, progress=status.update))
    if output == "table":
        console.print(
            f"upgrading {name}: {before} -> {planned.resolution.version}", highlight=False
        )
    _finish(report, wait, output, {"version": planned.resolution.version, "previous": before})


@catalog.command("uninstall")
@click.argument("name")
def catalog_uninstall(name: str) -> None:
    """Remove install NAME from every cluster and forget it."""
    with engine_session() as engine, err_console.status("uninstalling...") as status:
        report = run(installs.uninstall(engine, name, progress=status.update))
    print_report(report.summary())
    if not report.ok:
        raise ConfigError(f"{name} was not uninstalled everywhere (see above); it is kept")
    console.print(f"uninstalled {name}")


@catalog.command("installs")
@catalog_option
@output_option
def catalog_installs(catalog_dir: Path | None, output: str) -> None:
    """Catalog installs: version, constraint, policy, upgrade available, state per cluster."""
    with store_session() as store:
        rows = installs.installs(store, _catalog_dir(catalog_dir))
    emit(
        rows,
        output=output,
        columns=("NAME", "ENTRY", "VERSION", "AVAILABLE", "POLICY", "READY", "CLUSTERS"),
        rows=lambda d: [
            [
                x["name"],
                str(x["entry"]),
                str(x["version"]),
                x["available"] or "-",
                str(x["upgradePolicy"]),
                f"{x['ready']}/{len(x['clusters'])}",
                ", ".join(f"{c}={s}" for c, s in sorted(x["clusters"].items())) or "-",
            ]
            for x in d
        ],
    )


# --- lint ---------------------------------------------------------------------------------------


@catalog.command("lint")
@catalog_option
@click.option("--no-helm", is_flag=True, help="Skip helm lint (schema checks only).")
def catalog_lint(catalog_dir: Path | None, no_helm: bool) -> None:
    """Check every entry: app.yaml schema, values schema, chart defaults, helm lint."""
    directory = _catalog_dir(catalog_dir)
    from appflow.engine.catalog.lint import lint_catalog

    problems = run(lint_catalog(directory, helm=not no_helm))
    for line in problems:
        err_console.print(f"[red]✗[/] {line}", highlight=False)
    count = (
        sum(1 for p in directory.iterdir() if (p / "app.yaml").is_file())
        if directory.is_dir()
        else 0
    )
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the catalog {directory}")
    console.print(f"{count} catalog entries OK ({directory})", highlight=False)


# --- serve ---------------------------------------------------------------------------------------


@catalog.command("serve")
@click.option("--listen", default="127.0.0.1:8879", show_default=True, help="HOST:PORT.")
@catalog_option
def catalog_serve(listen: str, catalog_dir: Path | None) -> None:
    """Serve the catalog as a Helm repository (helm repo add NAME http://HOST:PORT)."""
    import uvicorn

    from appflow.server.catalog_repo import create_catalog_app

    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT")
    directory = _catalog_dir(catalog_dir)
    from appflow.engine.catalog.publisher import CatalogPublisher

    publisher = CatalogPublisher(directory, cache_dir() / "catalog" / "served")
    run(publisher.refresh())
    for problem in publisher.problems:
        err_console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    err_console.print(
        f"serving the catalog {directory} as a Helm repository at http://{host or '127.0.0.1'}:{port}",
        highlight=False,
    )
    uvicorn.run(
        create_catalog_app(publisher), host=host or "127.0.0.1", port=int(port), log_level="warning"
    )


# --- repositories --------------------------------------------------------------------------------


@catalog.group("repo")
def catalog_repo() -> None:
    """Helm HTTP repositories and OCI registries whose charts the catalog lists."""


@catalog_repo.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--username")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--poll-interval", type=int, default=300, show_default=True, help="Seconds.")
def catalog_repo_add(
    name: str,
    url: str,
    username: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    poll_interval: int,
) -> None:
    """Add repository NAME at URL (https://... serving index.yaml, or oci://...)."""
    repo = CatalogRepoRecord(
        name=name,
        url=url.rstrip("/"),
        username=username,
        password_file=str(password_file.resolve()) if password_file else None,
        ca_file=str(ca_file.resolve()) if ca_file else None,
        poll_interval_seconds=poll_interval,
    )
    with store_session() as store:
        count = add_catalog_repo(store, repo)
    if count is None:
        console.print(f"added OCI registry {name} ({redact_url(url)})", highlight=False)
    else:
        console.print(f"added repository {name}: {count} chart(s)", highlight=False)


@catalog_repo.command("list")
@output_option
def catalog_repo_list(output: str) -> None:
    rows = [
        {
            "name": r.name,
            "url": redact_url(r.url),
            "username": r.username,
            "pollIntervalSeconds": r.poll_interval_seconds,
            "charts": len(source.cached_index(r) or {}) if not r.is_oci else None,
        }
        for r in _catalog_repos()
    ]
    emit(
        rows,
        output=output,
        columns=("NAME", "URL", "CHARTS", "POLL"),
        rows=lambda d: [
            [
                x["name"],
                x["url"],
                str(x["charts"] if x["charts"] is not None else "-"),
                f"{x['pollIntervalSeconds']}s",
            ]
            for x in d
        ],
    )


@catalog_repo.command("remove")
@click.argument("name")
def catalog_repo_remove(name: str) -> None:
    with store_session() as store:
        remove_catalog_repo(store, name)
    console.print(f"removed repository {name}")


@catalog_repo.command("update")
@click.argument("names", nargs=-1)
@catalog_option
def catalog_repo_update(names: tuple[str, ...], catalog_dir: Path | None) -> None:
    """Re-read repository indexes now; installs with policy auto are upgraded."""
    with store_session() as store:
        refreshed = refresh_catalog_repos(store, names)
    for r in refreshed:
        console.print(f"{r.repo.name}: {r.status}, {r.charts} chart(s)", highlight=False)
    with engine_session() as engine:
        from appflow.engine.catalog.live import apply_auto_upgrades

        reports = run(apply_auto_upgrades(engine, _catalog_dir(catalog_dir)))
    for report in reports:
        print_report(report.summary())
