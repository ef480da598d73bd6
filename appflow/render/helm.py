"""Everything appflow does with Helm: template charts for a cluster, and the helm release mode.

The only module that imports pyhelm3. The helm CLI is driven through pyhelm3's
``Command``; where pyhelm3 has no option appflow needs (``--kube-version``,
``--api-versions``, ``-f`` values files, ``--dry-run=server``), the argument list
is built here and run through ``Command.run``, so process handling,
cancellation and error classification stay pyhelm3's.

Charts come from a folder of the checkout, a Helm HTTP repository (``--repo``
with a version constraint) or an OCI reference. A chart folder whose
``Chart.yaml`` lists dependencies that ``charts/`` lacks is copied to a
temporary folder and ``helm dependency build`` runs there: checkouts are shared
and read-only.

Helm's repository index and chart downloads are kept under appflow's cache
folder (``cache_dir()/helm``) so that they move with ``APPFLOW_CACHE_DIR``.

OCI registries are spoken to over HTTPS. A registry without TLS (one on the
edge site's LAN, or a test registry) is named in ``APPFLOW_HELM_PLAIN_HTTP``, a
comma-separated list of registry hosts (``host:port``, as in the oci://
reference); helm then gets ``--plain-http`` for charts from those hosts only,
so that no other registry is ever asked without TLS.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyhelm3
import yaml

from appflow.errors import (
    AppflowError,
    ApplyError,
    ClusterUnreachableError,
    NotFoundError,
    RenderError,
    SourceError,
)
from appflow.model.objects import Manifest
from appflow.paths import cache_dir
from appflow.render.documents import finish_objects, parse_yaml_documents, to_objects
from appflow.render.types import HelmChartRef, RenderRequest
from appflow.tools import find_tool

EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_SOURCE_LINE = re.compile(r"^# Source: (.+)$", re.MULTILINE)
# Where helm says a template failed: "template: c/templates/x.yaml:7:20: executing ...",
# "execution error at (c/templates/x.yaml:4:11): ...", "YAML parse error on c/templates/x.yaml".
_TEMPLATE_AT = (
    re.compile(r"template: ([^\s:()\"]+\.\w+):(\d+)(?::(\d+))?"),
    re.compile(r"\(([^\s:()\"]+\.\w+):(\d+)(?::(\d+))?\)"),
    re.compile(r"YAML parse error on ([^\s:()\"]+\.\w+)"),
)
_UNREACHABLE = re.compile(
    r"kubernetes cluster unreachable|connection refused|no such host|i/o timeout|"
    r"tls handshake timeout|network is unreachable|context deadline exceeded",
    re.IGNORECASE,
)
_REPO_UNREACHABLE = re.compile(
    r"is not a valid chart repository or cannot be reached", re.IGNORECASE
)
_HTTP_REGISTRY = re.compile(r"server gave HTTP response to HTTPS client", re.IGNORECASE)


PLAIN_HTTP_ENV = "APPFLOW_HELM_PLAIN_HTTP"


def plain_http_hosts() -> frozenset[str]:
    """The OCI registry hosts (host:port) named in APPFLOW_HELM_PLAIN_HTTP."""
    raw = os.environ.get(PLAIN_HTTP_ENV, "")
    return frozenset(h.strip().lower() for h in raw.split(",") if h.strip())


def oci_flags(reference: str) -> list[str]:
    """['--plain-http'] when REFERENCE is oci:// on a host in APPFLOW_HELM_PLAIN_HTTP."""
    if not reference.startswith("oci://"):
        return []
    host = reference.removeprefix("oci://").split("/", 1)[0].lower()
    return ["--plain-http"] if host in plain_http_hosts() else []


def is_exact_version(version: str | None) -> bool:
    return bool(version and EXACT_VERSION.match(version))


class HelmCommand(pyhelm3.Command):  # type: ignore[misc]
    """pyhelm3's Command with appflow's helm binary and cache folders on every call."""

    def __init__(
        self,
        *,
        kubeconfig: Path | None = None,
        kubecontext: str | None = None,
        timeout: str = "5m",
    ) -> None:
        helm_cache = cache_dir() / "helm"
        super().__init__(
            executable=str(find_tool("helm")),
            kubeconfig=kubeconfig,
            kubecontext=kubecontext,
            default_timeout=timeout,
            unpack_directory=None,
        )
        self._global_flags = [
            "--repository-cache",
            str(helm_cache / "repository"),
            "--content-cache",
            str(helm_cache / "content"),
        ]

    async def run(self, command: list[Any], input: bytes | None = None) -> bytes:
        result: bytes = await super().run([*command, *self._global_flags], input)
        return result


def helm_message(err: pyhelm3.Error) -> str:
    """Helm's error text without the 'Error:' prefix and the --debug advice."""
    lines = [
        line.removeprefix("Error: ").rstrip()
        for line in err.stderr.decode(errors="replace").splitlines()
        if line.strip() and "Use --debug flag" not in line
    ]
    # Helm 4 also logs the failure as a structured 'level=ERROR msg=...' line that
    # repeats the error; keep the plain error when there is one.
    plain = [line for line in lines if not line.startswith("level=")]
    return "\n".join(plain or lines) or f"helm exited with status {err.returncode}"


def _template_location(message: str) -> tuple[str | None, int | None, int | None]:
    for pattern in _TEMPLATE_AT:
        match = pattern.search(message)
        if match:
            groups = match.groups()
            line = int(groups[1]) if len(groups) > 1 and groups[1] else None
            column = int(groups[2]) if len(groups) > 2 and groups[2] else None
            return groups[0], line, column
    return None, None, None


def _chart_error(
    err: pyhelm3.Error, *, app: str | None, cluster: str | None, chart: str, action: str
) -> AppflowError:
    """Map a failed helm call to the most specific appflow error."""
    message = helm_message(err)
    where: dict[str, Any] = {"app": app, "cluster": cluster}
    if isinstance(err, pyhelm3.ConnectionError) or _UNREACHABLE.search(message):
        return ClusterUnreachableError(f"helm {action} of chart {chart}: {message}").located(
            **where
        )
    if _HTTP_REGISTRY.search(message):
        return SourceError(
            f"helm {action} of chart {chart}: {message}",
            hint=f"the registry speaks plain HTTP; if that is intended, add its host:port to {PLAIN_HTTP_ENV}",
        ).located(**where)
    if _REPO_UNREACHABLE.search(message):
        return SourceError(
            f"helm {action} of chart {chart}: {message}",
            hint="check the chart repository URL and that it is reachable",
        ).located(**where)
    if isinstance(err, pyhelm3.ChartNotFoundError) or (
        "not found" in message.lower() and "chart" in message.lower()
    ):
        return RenderError(
            f"helm {action} of chart {chart}: {message}",
            hint="check the chart name and that the version or constraint matches a published version",
        ).located(**where)
    file, line, column = _template_location(message)
    return RenderError(f"helm {action} of chart {chart} failed: {message}").located(
        **where, file=file, line=line, column=column
    )


def _chart_args(chart: HelmChartRef, chart_dir: Path | None) -> tuple[str, list[str]]:
    """The chart argument and the --repo/--version flags that locate it."""
    if chart_dir is not None:
        return str(chart_dir), []
    flags: list[str] = []
    if chart.is_oci:
        base = chart.repo if chart.repo and chart.repo.startswith("oci://") else None
        name = chart.name or ""
        if base is None:
            ref = name
        elif not name or base.rstrip("/").endswith(f"/{name}"):
            ref = base.rstrip("/")
        else:
            ref = f"{base.rstrip('/')}/{name}"
        flags += oci_flags(ref)
    else:
        if not chart.name:
            raise RenderError("a chart from a Helm repository needs a chart name")
        ref = chart.name
        if chart.repo:
            flags += ["--repo", chart.repo]
    if chart.version:
        flags += ["--version", chart.version]
    return ref, flags


def _local_chart_dir(chart: HelmChartRef, source_dir: Path) -> Path | None:
    if chart.path is None:
        return None
    folder = chart.path if chart.path.is_absolute() else source_dir / chart.path
    if not (folder / "Chart.yaml").is_file():
        raise RenderError(f"no Chart.yaml in chart folder {folder}").located(
            file=str(folder / "Chart.yaml")
        )
    return folder


def _read_chart_yaml(folder: Path) -> dict[str, Any]:
    path = folder / "Chart.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RenderError(f"cannot read Chart.yaml: {err}").located(file=str(path)) from err
    if not isinstance(data, dict):
        raise RenderError("Chart.yaml is not a mapping").located(file=str(path))
    return data


def _missing_dependencies(folder: Path, meta: Mapping[str, Any]) -> list[str]:
    charts = folder / "charts"
    missing = []
    for dep in meta.get("dependencies") or []:
        name = str(dep.get("name", ""))
        present = charts.is_dir() and (
            (charts / name).is_dir() or any(charts.glob(f"{glob_escape(name)}-*.tgz"))
        )
        if not present:
            missing.append(name)
    return missing


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _copy_for_dependencies(folder: Path, into: Path) -> bool:
    """Copy the chart to INTO, pointing relative file:// dependencies at the original places.

    Returns whether Chart.yaml was rewritten (then Chart.lock no longer matches
    and the dependencies must be resolved with 'update' rather than 'build').
    """
    shutil.copytree(folder, into, symlinks=False)
    meta = _read_chart_yaml(into)
    rewritten = False
    for dep in meta.get("dependencies") or []:
        repo = str(dep.get("repository") or "")
        if repo.startswith("file://") and not repo.startswith("file:///"):
            dep["repository"] = "file://" + str((folder / repo.removeprefix("file://")).resolve())
            rewritten = True
    if rewritten:
        (into / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return rewritten


@asynccontextmanager
async def prepared_chart(
    chart: HelmChartRef,
    source_dir: Path,
    *,
    command: HelmCommand,
    app: str | None,
    cluster: str | None,
) -> AsyncIterator[Path | None]:
    """Yield the chart folder to use (None for repository charts), dependencies built."""
    folder = _local_chart_dir(chart, source_dir)
    if folder is None:
        yield None
        return
    meta = await asyncio.to_thread(_read_chart_yaml, folder)
    if not _missing_dependencies(folder, meta):
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="appflow-chart-") as tmp:
        copy = Path(tmp) / folder.name
        rewritten = await asyncio.to_thread(_copy_for_dependencies, folder, copy)
        verb = "update" if rewritten or not (folder / "Chart.lock").is_file() else "build"
        try:
            await command.run(["dependency", verb, str(copy)])
        except pyhelm3.Error as err:
            raise _chart_error(
                err, app=app, cluster=cluster, chart=str(folder), action=f"dependency {verb}"
            ) from err
        yield copy


async def resolve_chart_version(chart: HelmChartRef) -> str:
    """The exact version a repository chart's constraint selects today (helm show chart)."""
    command = HelmCommand()
    ref, flags = _chart_args(chart, None)
    try:
        raw = await command.run(["show", "chart", ref, *flags])
    except pyhelm3.Error as err:
        raise _chart_error(
            err, app=None, cluster=None, chart=chart.describe(), action="show"
        ) from err
    meta = yaml.safe_load(raw)
    if not isinstance(meta, dict) or "version" not in meta:
        raise RenderError(f"helm show chart {chart.describe()} printed no version")
    return str(meta["version"])


@dataclass(frozen=True, kw_only=True)
class HelmTemplate:
    """What helm template produced for one request."""

    objects: tuple[Manifest, ...]
    chart_name: str
    chart_version: str


def _values_flags(values_files: Sequence[Path]) -> list[str]:
    flags: list[str] = []
    for path in values_files:
        if not path.is_file():
            raise RenderError("values file does not exist").located(file=str(path))
        flags += ["--values", str(path)]
    # The merged inline values go last on stdin: they win over every file.
    return [*flags, "--values", "-"]


async def helm_template(request: RenderRequest) -> HelmTemplate:
    """Render REQUEST's chart with helm template for the request's cluster capabilities."""
    if request.helm is None:
        raise RenderError("a helm app needs a chart (path, or repo and name)").located(
            app=request.app, cluster=request.cluster
        )
    chart = request.helm
    server = request.server_render_kubeconfig
    command = HelmCommand(kubeconfig=server)
    release = request.effective_release_name
    async with prepared_chart(
        chart, request.source_dir, command=command, app=request.app, cluster=request.cluster
    ) as chart_dir:
        ref, chart_flags = _chart_args(chart, chart_dir)
        args: list[str] = ["template", release, ref, *chart_flags]
        args += ["--namespace", request.namespace or "default"]
        args.append("--include-crds" if request.include_crds else "--skip-crds")
        # Test hooks are for 'helm test'; applied as desired state they would run once and linger.
        args.append("--skip-tests")
        if server is not None:
            # The target's API server answers lookup and its discovery is the truth,
            # so --kube-version/--api-versions are not passed.
            args.append("--dry-run=server")
        else:
            args += ["--kube-version", request.capabilities.kube_version]
            for api_version in sorted(set(request.capabilities.api_versions)):
                args += ["--api-versions", api_version]
        args += _values_flags(request.values_files)
        values = json.dumps(dict(request.values), default=str).encode()
        try:
            raw = await command.run(args, values)
        except pyhelm3.Error as err:
            raise _chart_error(
                err,
                app=request.app,
                cluster=request.cluster,
                chart=chart.describe(),
                action="template",
            ) from err
        if chart_dir is not None:
            meta = await asyncio.to_thread(_read_chart_yaml, chart_dir)
            name, version = str(meta.get("name", chart_dir.name)), str(meta.get("version", ""))
        else:
            name, version = chart.name or chart.describe(), chart.version or ""
    text = raw.decode()
    objects = _objects_from_output(text, chart=chart.describe(), namespace=request.namespace)
    return HelmTemplate(objects=objects, chart_name=name, chart_version=version)


def _objects_from_output(text: str, *, chart: str, namespace: str | None) -> tuple[Manifest, ...]:
    # helm prefixes each document with "# Source: <template>"; errors name that template.
    starts: list[int] = []
    sources: list[str] = []
    for match in _SOURCE_LINE.finditer(text):
        starts.append(text.count("\n", 0, match.start()) + 1)
        sources.append(match.group(1).strip())

    def origin(line: int) -> str | None:
        at = bisect.bisect_right(starts, line) - 1
        return sources[at] if at >= 0 else None

    docs = parse_yaml_documents(text, file=f"helm template {chart}", origin_of_line=origin)
    return finish_objects(to_objects(docs), namespace=namespace)


# --- helm release mode ---------------------------------------------------------------
#
# For apps that must be installed as Helm releases (hooks, charts that expect
# helm's own bookkeeping). ``helm_timeout`` is helm's --timeout for each
# Kubernetes operation it waits on; it is not an asyncio deadline (callers that
# want one wrap the call in asyncio.timeout). Errors: an unreachable cluster is
# ClusterUnreachableError (retryable), a missing release NotFoundError, a chart
# that does not render RenderError, anything the API server refused ApplyError.


@dataclass(frozen=True, kw_only=True)
class HelmRelease:
    """A Helm release on a cluster as helm reports it."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str | None = None
    chart_version: str | None = None
    app_version: str | None = None

    @classmethod
    def from_helm(cls, data: Mapping[str, Any]) -> HelmRelease:
        info = data.get("info") or {}
        meta = (data.get("chart") or {}).get("metadata") or {}
        return cls(
            name=str(data.get("name", "")),
            namespace=str(data.get("namespace", "")),
            revision=int(data.get("version", 0)),
            status=str(info.get("status", "unknown")),
            chart=meta.get("name"),
            chart_version=meta.get("version"),
            app_version=meta.get("appVersion"),
        )


def _release_error(
    err: pyhelm3.Error, *, app: str | None, cluster: str | None, release: str, action: str
) -> AppflowError:
    message = helm_message(err)
    where: dict[str, Any] = {"app": app, "cluster": cluster, "object": f"helm release {release}"}
    if isinstance(err, pyhelm3.ReleaseNotFoundError):
        return NotFoundError(f"helm {action}: {message}").located(**where)
    if isinstance(err, pyhelm3.ConnectionError) or _UNREACHABLE.search(message):
        return ClusterUnreachableError(f"helm {action}: {message}").located(**where)
    if isinstance(err, pyhelm3.FailedToRenderChartError):
        file, line, column = _template_location(message)
        return RenderError(f"helm {action}: {message}").located(
            **where, file=file, line=line, column=column
        )
    return ApplyError(f"helm {action}: {message}").located(**where)


def _json_from(stdout: bytes) -> dict[str, Any]:
    # Helm 4 may print OCI pull lines before the JSON on install/upgrade.
    start = stdout.find(b"{")
    if start < 0:
        raise ApplyError(f"helm printed no release status: {stdout.decode(errors='replace')[:200]}")
    data = json.loads(stdout[start:])
    if not isinstance(data, dict):
        raise ApplyError("helm printed a release status that is not an object")
    return data


async def helm_install_or_upgrade(
    *,
    release: str,
    namespace: str,
    chart: HelmChartRef,
    source_dir: Path,
    kubeconfig: Path,
    context: str | None = None,
    values: Mapping[str, Any] | None = None,
    values_files: Sequence[Path] = (),
    app: str | None = None,
    cluster: str | None = None,
    helm_timeout: str = "5m",
    wait: bool = False,
    rollback_on_failure: bool = False,
    create_namespace: bool = True,
    description: str | None = None,
) -> HelmRelease:
    """helm upgrade --install against the cluster; returns the new release revision and status."""
    command = HelmCommand(kubeconfig=kubeconfig, kubecontext=context, timeout=helm_timeout)
    async with prepared_chart(
        chart, source_dir, command=command, app=app, cluster=cluster
    ) as chart_dir:
        ref, chart_flags = _chart_args(chart, chart_dir)
        args: list[str] = [
            "upgrade",
            release,
            ref,
            "--install",
            "--namespace",
            namespace,
            "--output",
            "json",
            "--timeout",
            helm_timeout,
            *chart_flags,
            *_values_flags(values_files),
        ]
        if create_namespace:
            args.append("--create-namespace")
        if wait:
            args += ["--wait", "--wait-for-jobs"]
        if rollback_on_failure:
            args.append("--rollback-on-failure")
        if description:
            args += ["--description", description]
        try:
            raw = await command.run(args, json.dumps(dict(values or {}), default=str).encode())
        except pyhelm3.Error as err:
            raise _release_error(
                err, app=app, cluster=cluster, release=release, action="upgrade --install"
            ) from err
    return HelmRelease.from_helm(_json_from(raw))


async def helm_release_status(
    *,
    release: str,
    namespace: str,
    kubeconfig: Path,
    context: str | None = None,
    app: str | None = None,
    cluster: str | None = None,
) -> HelmRelease | None:
    """The current revision of RELEASE, or None when there is no such release."""
    command = HelmCommand(kubeconfig=kubeconfig, kubecontext=context)
    try:
        data = await command.status(release, namespace=namespace)
    except pyhelm3.ReleaseNotFoundError:
        return None
    except pyhelm3.Error as err:
        raise _release_error(
            err, app=app, cluster=cluster, release=release, action="status"
        ) from err
    return HelmRelease.from_helm(data)


async def helm_rollback(
    *,
    release: str,
    namespace: str,
    kubeconfig: Path,
    revision: int | None = None,
    context: str | None = None,
    app: str | None = None,
    cluster: str | None = None,
    helm_timeout: str = "5m",
    wait: bool = False,
) -> HelmRelease:
    """helm rollback to REVISION (the previous one when None); returns the new current revision."""
    command = HelmCommand(kubeconfig=kubeconfig, kubecontext=context, timeout=helm_timeout)
    try:
        await command.rollback(
            release, revision, namespace=namespace, wait=wait, timeout=helm_timeout
        )
        data = await command.status(release, namespace=namespace)
    except pyhelm3.Error as err:
        raise _release_error(
            err, app=app, cluster=cluster, release=release, action="rollback"
        ) from err
    return HelmRelease.from_helm(data)


async def helm_uninstall(
    *,
    release: str,
    namespace: str,
    kubeconfig: Path,
    context: str | None = None,
    app: str | None = None,
    cluster: str | None = None,
    helm_timeout: str = "5m",
    wait: bool = False,
    missing_ok: bool = True,
) -> bool:
    """helm uninstall; returns False when the release did not exist (and MISSING_OK)."""
    command = HelmCommand(kubeconfig=kubeconfig, kubecontext=context, timeout=helm_timeout)
    try:
        await command.uninstall(release, namespace=namespace, wait=wait, timeout=helm_timeout)
    except pyhelm3.ReleaseNotFoundError as err:
        if missing_ok:
            return False
        raise _release_error(
            err, app=app, cluster=cluster, release=release, action="uninstall"
        ) from err
    except pyhelm3.Error as err:
        raise _release_error(
            err, app=app, cluster=cluster, release=release, action="uninstall"
        ) from err
    return True


# --- catalog: lint, package, pull ---------------------------------------------------------------


async def helm_lint(chart_dir: Path, *, values: Mapping[str, Any] | None = None) -> list[str]:
    """helm lint of the chart folder; the findings helm reports ([] when it passes).

    Findings are helm's '[ERROR]' and '[WARNING]' lines; INFO lines (a missing
    icon) are left out.
    """
    command = HelmCommand()
    args: list[Any] = ["lint", str(chart_dir), "--values", "-"]
    try:
        raw = await command.run(args, json.dumps(dict(values or {}), default=str).encode())
    except pyhelm3.Error as err:
        text = bytes(err.stdout or b"").decode(errors="replace")
        findings = _lint_findings(text + "\n" + err.stderr.decode(errors="replace"))
        return findings or [helm_message(err)]
    return [f for f in _lint_findings(raw.decode(errors="replace")) if f.startswith("[ERROR]")]


def _lint_findings(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        wanted = stripped.startswith(("[ERROR]", "[WARNING]"))
        if wanted or (stripped.startswith("Error: ") and "linted" not in stripped):
            found.append(stripped)
    return found


async def helm_package(chart_dir: Path, destination: Path) -> Path:
    """helm package CHART_DIR into DESTINATION; the .tgz it wrote."""
    destination.mkdir(parents=True, exist_ok=True)
    command = HelmCommand()
    try:
        raw = await command.run(["package", str(chart_dir), "--destination", str(destination)])
    except pyhelm3.Error as err:
        raise RenderError(f"helm package of {chart_dir} failed: {helm_message(err)}").located(
            file=str(chart_dir / "Chart.yaml")
        ) from err
    # "Successfully packaged chart and saved it to: /path/name-1.0.0.tgz"
    text = raw.decode(errors="replace").strip()
    path = Path(text.rsplit(": ", 1)[-1].strip())
    if not path.is_file():
        meta = _read_chart_yaml(chart_dir)
        path = destination / f"{meta['name']}-{meta['version']}.tgz"
    if not path.is_file():
        raise RenderError(f"helm package of {chart_dir} wrote no archive: {text}")
    return path


async def helm_pull(reference: str, *, version: str, destination: Path) -> Path:
    """helm pull an OCI (or repository) chart at VERSION, unpacked into DESTINATION; its folder.

    Helm verifies OCI content by its manifest digest while pulling.
    """
    destination.mkdir(parents=True, exist_ok=True)
    command = HelmCommand()
    try:
        await command.run(
            [
                "pull",
                reference,
                "--version",
                version,
                "--untar",
                "--untardir",
                str(destination),
                *oci_flags(reference),
            ]
        )
    except pyhelm3.Error as err:
        raise _chart_error(
            err, app=None, cluster=None, chart=f"{reference}@{version}", action="pull"
        ) from err
    for child in sorted(destination.iterdir()):
        if (child / "Chart.yaml").is_file():
            return child
    raise RenderError(f"helm pull {reference} --version {version} left no chart folder")
