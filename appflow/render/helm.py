"""Everything appflow does with Helm: template charts for a cluster, and the helm release mode.

The only module that imports pyhelm3. The helm CLI is driven through pyhelm3's
``Command``; where pyhelm3 has no option appflow needs (``--kube-version``,
``--api-versions``, ``-f`` values files, ``--dry-run=server``), the argument list
is built here and run through ``Command.run``. That one is appflow's: helm runs in a
process group of its own that a cancelled render ends whole (``HelmCommand.run``), and
its errors are classified as pyhelm3 classifies them.

Charts come from a folder (or ``.tgz``) of the checkout, a Helm HTTP
repository (``--repo`` with a version constraint), an OCI reference, or the
``http(s)://`` URL of a chart archive, which is downloaded (conditionally, by
ETag) and kept under the cache by its sha256 (``fetch_chart_archive``). A chart
folder whose ``Chart.yaml`` lists dependencies that ``charts/`` lacks is copied
to a temporary folder and ``helm dependency build`` runs there: checkouts are
shared and read-only. With ``dependency_update`` off (fleet.yaml's
disableDependencyUpdate) nothing is fetched and ``charts/`` is used as vendored.
A chart, and every ``file://`` dependency of it, must lie inside the source root.

Errors carry helm's own cause lines (``helm dependency update`` prints the
unreachable repository on stdout, not stderr), the chart and its repository.
A template render talks to no cluster, so no error of it is ever taken for an
unreachable cluster: dial errors there are the repository's. The helm command
line itself is logged at DEBUG (``appflow --debug``), never printed otherwise.

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
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
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
from appflow.model.giturl import redact_url
from appflow.model.objects import Manifest
from appflow.paths import cache_dir
from appflow.render.documents import (
    check_file_size,
    check_output_size,
    finish_objects,
    parse_yaml_documents,
    to_objects,
)
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
_CLUSTER_UNREACHABLE = re.compile(r"kubernetes cluster unreachable", re.IGNORECASE)
_DIAL_FAILED = re.compile(
    r"connection refused|no such host|i/o timeout|tls handshake timeout|"
    r"network is unreachable|context deadline exceeded|connection reset",
    re.IGNORECASE,
)
_REPO_UNREACHABLE = re.compile(
    r"is not a valid chart repository or cannot be reached|unable to get an update from|"
    r"failed to fetch|failed to download|no cached repository",
    re.IGNORECASE,
)
_HTTP_REGISTRY = re.compile(r"server gave HTTP response to HTTPS client", re.IGNORECASE)
_URL = re.compile(r"(?:https?|oci)://[^\s\"'()]+")
# Lines helm prints on stdout that are the cause of a failure printed on stderr.
_CAUSE_ON_STDOUT = re.compile(r"^(\.*)(unable to get an update|error: )", re.IGNORECASE)


class _DebugOnly(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Logs whatever pyhelm3 logs (the command line, at INFO and WARNING) at DEBUG."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


_log = _DebugOnly(logging.getLogger("appflow.helm"), {})


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
        # pyhelm3 logs every failing command line as a WARNING; with no handler
        # configured Python prints it to stderr before appflow's own error. The
        # command line is for `appflow --debug` only.
        self._logger = _log

    async def run(self, command: list[Any], input: bytes | None = None) -> bytes:
        """Run helm with COMMAND (INPUT on its stdin) in a process group of its own.

        pyhelm3 runs helm through a shell and, when cancelled, terminates the shell only: a
        render cancelled while its values were being written (a replica fenced, an app moved
        to another replica) could leave helm waiting on its stdin for ever, a child of init.
        Here helm is started directly, in its own session, and a cancellation (or any error
        while it runs) ends the whole group: SIGTERM, then SIGKILL after HELM_GRACE_SECONDS.
        """
        args = [str(part) for part in [self._executable, *command, *self._global_flags]]
        args += _kube_flags(self)
        shown = shlex.join(self._log_format(part) for part in args)
        self._logger.info("running command: %s", shown)
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await process.communicate(input)
        except BaseException:
            await _end_group(process)
            raise
        if process.returncode == 0:
            return stdout
        self._logger.warning("command failed: %s", shown)
        raise _helm_error_class(stderr.decode(errors="replace").lower())(
            process.returncode, stdout, stderr
        )


HELM_GRACE_SECONDS = 2.0
"""How long a cancelled helm process group has to exit on SIGTERM before SIGKILL."""


def _kube_flags(command: pyhelm3.Command) -> list[str]:
    """The cluster flags pyhelm3's Command adds to every command line."""
    flags: list[str] = []
    for flag, value in (
        ("--kubeconfig", command._kubeconfig),
        ("--kube-context", command._kubecontext),
        ("--kube-apiserver", command._kubeapiserver),
        ("--kube-token", command._kubetoken),
    ):
        if value:
            flags += [flag, str(value)]
    if command._insecure_skip_tls_verify:
        flags.append("--kube-insecure-skip-tls-verify")
    return flags


def _signal_group(pid: int, signum: signal.Signals) -> bool:
    """Send SIGNUM to process group PID; False when the group is gone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    return True


async def _end_group(process: asyncio.subprocess.Process) -> None:
    """End PROCESS's group (helm and anything it started): SIGTERM, then SIGKILL. Runs while
    the caller is being cancelled, so the wait is shielded and bounded."""
    if not _signal_group(process.pid, signal.SIGTERM):
        return
    waited = asyncio.ensure_future(process.wait())
    with suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(waited), HELM_GRACE_SECONDS)
    # The leader may have exited while a child of it lingers: the group is ended either way.
    _signal_group(process.pid, signal.SIGKILL)


def _helm_error_class(stderr: str) -> type[pyhelm3.Error]:
    """pyhelm3's classification of a failed helm command by its (lower-cased) stderr, in
    pyhelm3's order (the rest of this module catches its classes)."""
    from pyhelm3 import command as pyhelm3_command
    from pyhelm3 import errors

    rules: tuple[tuple[bool, type[pyhelm3.Error]], ...] = (
        ("context canceled" in stderr, errors.CommandCancelledError),
        # Any error naming etcd is a connection error, even beside a "not found".
        ("etcdserver" in stderr, errors.ConnectionError),
        ("release: not found" in stderr, errors.ReleaseNotFoundError),
        ("failed to render chart" in stderr, errors.FailedToRenderChartError),
        ("execution error" in stderr, errors.FailedToRenderChartError),
        (
            "rendered manifests contain a resource that already exists" in stderr,
            errors.ResourceAlreadyExistsError,
        ),
        ("is invalid" in stderr, errors.InvalidResourceError),
        (bool(pyhelm3_command.CHART_NOT_FOUND.search(stderr)), errors.ChartNotFoundError),
        (bool(pyhelm3_command.CONNECTION_ERROR.search(stderr)), errors.ConnectionError),
    )
    return next((cls for matched, cls in rules if matched), errors.Error)


def helm_message(err: pyhelm3.Error) -> str:
    """Helm's error text without the 'Error:' prefix and the --debug advice.

    Helm prints some causes on stdout (``helm dependency update``'s "Unable to
    get an update from the <url> chart repository" and the dial error under
    it) and only a consequence on stderr; those stdout lines come first.
    """
    lines = [
        line.removeprefix("Error: ").rstrip()
        for line in err.stderr.decode(errors="replace").splitlines()
        if line.strip() and "Use --debug flag" not in line
    ]
    # Helm 4 also logs the failure as a structured 'level=ERROR msg=...' line that
    # repeats the error; keep the plain error when there is one.
    plain = [line for line in lines if not line.startswith("level=")]
    causes = _stdout_causes(bytes(err.stdout or b"").decode(errors="replace"))
    return "\n".join([*causes, *(plain or lines)]) or f"helm exited with status {err.returncode}"


def _stdout_causes(text: str) -> list[str]:
    """Lines of helm's stdout that explain a failure, with their indented continuations."""
    causes: list[str] = []
    keep = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[:1].isspace() and keep:
            causes.append(line.strip())
            continue
        keep = bool(_CAUSE_ON_STDOUT.search(line))
        if keep:
            causes.append(line.strip().lstrip(".").strip())
    return causes


def _template_location(message: str) -> tuple[str | None, int | None, int | None]:
    for pattern in _TEMPLATE_AT:
        match = pattern.search(message)
        if match:
            groups = match.groups()
            line = int(groups[1]) if len(groups) > 1 and groups[1] else None
            column = int(groups[2]) if len(groups) > 2 and groups[2] else None
            return groups[0], line, column
    return None, None, None


HelmFailure = str
"""One of: 'cluster', 'plain-http-registry', 'repository', 'not-found', 'render'."""


def classify_failure(
    message: str, *, talks_to_cluster: bool, repositories: Sequence[str] = ()
) -> HelmFailure:
    """What a failed helm call's MESSAGE says went wrong (pure).

    Only a command that talks to a cluster (release mode, a server-side render)
    can fail because the cluster is unreachable. A dial error from a command
    that does not (a template render, a dependency update) is a chart
    repository or registry that cannot be reached, never the cluster; from one
    that does, it is the repository's only when helm says so or names one of
    REPOSITORIES (the chart's), else the cluster's.
    """
    if talks_to_cluster and _CLUSTER_UNREACHABLE.search(message):
        return "cluster"
    if _HTTP_REGISTRY.search(message):
        return "plain-http-registry"
    if _REPO_UNREACHABLE.search(message):
        return "repository"
    if _DIAL_FAILED.search(message):
        hosts = [urllib.parse.urlsplit(r).netloc for r in repositories]
        if not talks_to_cluster or any(h and h in message for h in hosts):
            return "repository"
        return "cluster"
    lowered = message.lower()
    if "not found" in lowered and "chart" in lowered:
        return "not-found"
    return "render"


def _repositories(message: str, chart: HelmChartRef | None) -> list[str]:
    """The repository or registry URLs a failure concerns: the chart's, and those helm named."""
    found: list[str] = []
    if chart is not None and chart.repo:
        found.append(chart.repo)
    if chart is not None and chart.url:
        found.append(chart.url)
    if chart is not None and chart.name and chart.name.startswith("oci://"):
        found.append(chart.name)
    found += [url.rstrip(".:,") for url in _URL.findall(message)]
    return list(dict.fromkeys(found))


def _chart_error(
    err: pyhelm3.Error,
    *,
    app: str | None,
    cluster: str | None,
    chart: str,
    action: str,
    ref: HelmChartRef | None = None,
    talks_to_cluster: bool = False,
) -> AppflowError:
    """Map a failed helm call to the most specific appflow error."""
    message = helm_message(err)
    where: dict[str, Any] = {"app": app, "cluster": cluster}
    known = _repositories("", ref)
    kind = classify_failure(message, talks_to_cluster=talks_to_cluster, repositories=known)
    repositories = _repositories(message, ref) if kind != "cluster" else known
    from_repo = f" (repository {', '.join(repositories)})" if repositories else ""
    text = f"helm {action} of chart {chart}{from_repo} failed: {message}"
    if kind == "cluster":
        return ClusterUnreachableError(text).located(**where)
    if kind == "plain-http-registry":
        return SourceError(
            text,
            hint=f"the registry speaks plain HTTP; if that is intended, add its host:port to {PLAIN_HTTP_ENV}",
        ).located(**where)
    if kind == "repository":
        return SourceError(
            text, hint="check the chart repository URL and that it is reachable from here"
        ).located(**where)
    if kind == "not-found":
        return RenderError(
            text,
            hint="check the chart name and that the version or constraint matches a published version",
        ).located(**where)
    file, line, column = _template_location(message)
    return RenderError(text).located(**where, file=file, line=line, column=column)


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


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _local_chart_dir(chart: HelmChartRef, source_dir: Path, *, root: Path) -> Path | None:
    """The chart folder (or .tgz) to render, checked to be inside ROOT; None for remote charts."""
    if chart.path is None:
        return None
    folder = chart.path if chart.path.is_absolute() else source_dir / chart.path
    resolved = folder.resolve()
    # A chart archive downloaded by URL lives in the cache, not in the source.
    if not _inside(root.resolve(), resolved) and not _inside(archives_dir().resolve(), resolved):
        raise RenderError(
            f"chart {folder} is outside the source ({resolved})",
            hint="helm.chart must name a chart inside the repository or registered folder",
        )
    if is_archive(resolved):
        return resolved
    if not (folder / "Chart.yaml").is_file():
        raise RenderError(f"no Chart.yaml in chart folder {folder}").located(
            file=str(folder / "Chart.yaml")
        )
    return folder


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith((".tgz", ".tar.gz"))


def _read_chart_yaml(folder: Path) -> dict[str, Any]:
    path = folder / "Chart.yaml"
    check_file_size(path, shown=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RenderError(f"cannot read Chart.yaml: {err}").located(file=str(path)) from err
    docs = parse_yaml_documents(text, file=str(path))
    data = docs[0].data if docs else None
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


def _check_local_dependencies(folder: Path, meta: Mapping[str, Any], *, root: Path) -> None:
    """Every ``file://`` dependency of the chart lies inside ROOT (helm would read any folder)."""
    root = root.resolve()
    for dep in meta.get("dependencies") or []:
        repo = str(dep.get("repository") or "")
        if not repo.startswith("file://"):
            continue
        target = (folder / repo.removeprefix("file://")).resolve()
        if not _inside(root, target):
            raise RenderError(
                f"dependency {dep.get('name')!r} of chart {folder.name} is {repo}, outside the "
                f"source ({target})",
                hint="a file:// dependency must be a chart inside the repository or registered folder",
            ).located(file=str(folder / "Chart.yaml"), field="dependencies")


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
    root: Path | None = None,
) -> AsyncIterator[Path | None]:
    """Yield the chart folder to use (None for repository charts), dependencies built.

    ROOT (SOURCE_DIR when None) confines the chart and its file:// dependencies.
    """
    root = root or source_dir
    if chart.url is not None and chart.path is None:
        chart = replace(chart, path=await fetch_chart_archive(chart.url))
    folder = _local_chart_dir(chart, source_dir, root=root)
    if folder is None or is_archive(folder):
        # An archive carries its dependencies in charts/, as `helm package` made it.
        yield folder
        return
    meta = await asyncio.to_thread(_read_chart_yaml, folder)
    await asyncio.to_thread(_check_local_dependencies, folder, meta, root=root)
    if not chart.dependency_update or not _missing_dependencies(folder, meta):
        # Fleet's disableDependencyUpdate: what charts/ vendors is all there is;
        # helm itself names a dependency that is missing.
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
                err,
                app=app,
                cluster=cluster,
                chart=str(folder),
                action=f"dependency {verb}",
                ref=chart,
                talks_to_cluster=False,
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
            err, app=None, cluster=None, chart=chart.describe(), action="show", ref=chart
        ) from err
    meta = yaml.safe_load(raw)
    if not isinstance(meta, dict) or "version" not in meta:
        raise RenderError(f"helm show chart {chart.describe()} printed no version")
    return str(meta["version"])


@dataclass(frozen=True, kw_only=True)
class HelmTemplate:
    """What helm template produced for one request: its text, its objects, the chart rendered.

    ``objects`` is empty when the request post-renders the text with kustomize,
    which parses what the kustomization makes of it instead.
    """

    text: str
    objects: tuple[Manifest, ...]
    chart_name: str
    chart_version: str


def _values_flags(values_files: Sequence[Path]) -> list[str]:
    flags: list[str] = []
    for path in values_files:
        if not path.is_file():
            raise RenderError("values file does not exist").located(file=str(path))
        check_file_size(path, shown=str(path))
        flags += ["--values", str(path)]
    # The merged inline values go last on stdin: they win over every file.
    return [*flags, "--values", "-"]


def _chart_meta(path: Path) -> dict[str, Any]:
    """Chart.yaml of a chart folder or of a chart archive."""
    if not is_archive(path):
        return _read_chart_yaml(path)
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive.getmembers():
                parts = member.name.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    handle = archive.extractfile(member)
                    data = yaml.safe_load(handle.read()) if handle else None
                    if isinstance(data, dict):
                        return data
    except (tarfile.TarError, OSError, yaml.YAMLError) as err:
        raise RenderError(f"{path.name} is not a chart archive: {err}").located(
            file=str(path)
        ) from err
    raise RenderError(f"{path.name} is not a chart archive: it has no <chart>/Chart.yaml").located(
        file=str(path)
    )


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
        chart,
        request.source_dir,
        command=command,
        app=request.app,
        cluster=request.cluster,
        root=request.root,
    ) as chart_dir:
        ref, chart_flags = _chart_args(chart, chart_dir)
        args: list[str] = ["template", release, ref, *chart_flags]
        args += ["--namespace", request.namespace or "default"]
        args.append("--include-crds" if request.include_crds else "--skip-crds")
        # Hooks, test hooks included, stay in the output (after the chart's other
        # objects, each with its helm.sh/hook annotation): the sync runs them at
        # their moments (appflow.model.hooks), `appflow app test` runs the tests.
        if request.skip_schema_validation:
            args.append("--skip-schema-validation")
        if server is not None:
            # The target's API server answers lookup and its discovery is the truth,
            # so --kube-version/--api-versions are not passed. Against a server, helm
            # checks that no object of the chart exists outside a Helm release: the
            # objects appflow applied at the last sync would fail every later render
            # ("exists and cannot be imported into the current release").
            # --take-ownership makes that check a plain GET; a dry run takes nothing.
            args += ["--dry-run=server", "--take-ownership"]
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
                ref=chart,
                talks_to_cluster=server is not None,
            ) from err
        if chart_dir is not None:
            meta = await asyncio.to_thread(_chart_meta, chart_dir)
            name, version = str(meta.get("name", chart_dir.name)), str(meta.get("version", ""))
        else:
            name, version = chart.name or chart.describe(), chart.version or ""
    check_output_size(raw, what=f"helm template {chart.describe()}")
    text = raw.decode(errors="replace")
    # Parsing megabytes of YAML takes seconds: not on the event loop.
    objects = (
        ()
        if request.kustomize_dir
        else await asyncio.to_thread(
            _objects_from_output, text, chart=chart.describe(), namespace=request.namespace
        )
    )
    return HelmTemplate(text=text, objects=objects, chart_name=name, chart_version=version)


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


# --- chart archives by URL ------------------------------------------------------------
#
# fleet.yaml's helm.chart may be the URL of a chart archive. It is fetched with
# a conditional GET (the ETag and Last-Modified of the last download), kept as
# cache_dir()/helm/archives/<sha256>.tgz, and rendered from there: equal content
# is one file and one render cache key, changed content a new one. A go-getter
# `?checksum=sha256:<hex>` is verified, and with it a kept archive is used
# without asking the server at all.

MAX_ARCHIVE_BYTES = 20 * 1024 * 1024
_archive_locks: dict[tuple[int, str], asyncio.Lock] = {}


def archives_dir() -> Path:
    return cache_dir() / "helm" / "archives"


def split_checksum(url: str) -> tuple[str, str | None]:
    """(URL without go-getter's checksum parameter, the sha256 it asks for)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    checksum = next((v for k, v in query if k == "checksum"), None)
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "checksum"])
    clean = urllib.parse.urlunsplit(parts._replace(query=rest))
    if checksum is None:
        return clean, None
    kind, _, value = checksum.rpartition(":")
    if kind not in ("", "sha256") or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise RenderError(
            f"checksum {checksum!r} of chart URL {clean} is not a sha256",
            hint="write it as ?checksum=sha256:<64 hex digits>",
        )
    return clean, value.lower()


def _archive_meta_path(url: str) -> Path:
    return archives_dir() / f"url-{hashlib.sha256(url.encode()).hexdigest()[:32]}.json"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


async def fetch_chart_archive(url: str) -> Path:
    """The chart archive at URL, downloaded if it changed, as a .tgz kept by its sha256."""
    clean, wanted = split_checksum(url)
    if wanted is not None and (archives_dir() / f"{wanted}.tgz").is_file():
        return archives_dir() / f"{wanted}.tgz"
    key = (id(asyncio.get_running_loop()), clean)
    lock = _archive_locks.setdefault(key, asyncio.Lock())
    async with lock:
        return await _download_archive(clean, wanted)


async def _download_archive(url: str, wanted: str | None) -> Path:
    import httpx  # only apps with chart URLs pay for it

    meta_path = _archive_meta_path(url)
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
    kept = archives_dir() / f"{meta.get('digest')}.tgz" if meta.get("url") == url else None
    headers = {}
    if kept is not None and kept.is_file():
        if meta.get("etag"):
            headers["If-None-Match"] = str(meta["etag"])
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = str(meta["last_modified"])
    try:
        async with (
            httpx.AsyncClient(follow_redirects=True, timeout=60.0) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 304 and kept is not None and kept.is_file():
                return kept
            if response.status_code != 200:
                raise _archive_error(url, f"the server answered HTTP {response.status_code}")
            chunks = io.BytesIO()
            async for chunk in response.aiter_bytes():
                chunks.write(chunk)
                if chunks.tell() > MAX_ARCHIVE_BYTES:
                    raise _archive_error(
                        url, f"it is larger than {MAX_ARCHIVE_BYTES // (1024 * 1024)} MiB"
                    )
            raw = chunks.getvalue()
            etag = response.headers.get("etag")
            last_modified = response.headers.get("last-modified")
    except httpx.HTTPError as err:
        raise _archive_error(url, f"cannot download it: {err}") from err
    digest = hashlib.sha256(raw).hexdigest()
    if wanted is not None and digest != wanted:
        error = SourceError(
            f"chart archive {redact_url(url)} has sha256 {digest}, but its checksum says {wanted}; "
            "refused, nothing rendered",
            hint="the archive at that URL changed: check it, then update the checksum",
        )
        error.retryable = False
        raise error
    target = archives_dir() / f"{digest}.tgz"
    await asyncio.to_thread(_keep_archive, target, raw, url)
    meta = {"url": url, "digest": digest, "etag": etag, "last_modified": last_modified}
    meta["fetched"] = time.time()
    await asyncio.to_thread(_write_atomic, meta_path, json.dumps(meta).encode())
    return target


def _keep_archive(target: Path, raw: bytes, url: str) -> None:
    if target.is_file():
        return
    _write_atomic(target, raw)
    try:
        _chart_meta(target)
    except RenderError as err:
        target.unlink(missing_ok=True)
        raise _archive_error(url, err.message) from err


def _archive_error(url: str, why: str) -> SourceError:
    return SourceError(
        f"chart archive {redact_url(url)}: {why}",
        hint="helm.chart must be the URL of a packaged chart (.tgz), reachable from here",
    )


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
    err: pyhelm3.Error,
    *,
    app: str | None,
    cluster: str | None,
    release: str,
    action: str,
    chart: HelmChartRef | None = None,
) -> AppflowError:
    message = helm_message(err)
    where: dict[str, Any] = {"app": app, "cluster": cluster, "object": f"helm release {release}"}
    if isinstance(err, pyhelm3.ReleaseNotFoundError):
        return NotFoundError(f"helm {action}: {message}").located(**where)
    failure = classify_failure(
        message, talks_to_cluster=True, repositories=_repositories("", chart)
    )
    if failure == "cluster" or (
        isinstance(err, pyhelm3.ConnectionError) and failure != "repository"
    ):
        return ClusterUnreachableError(f"helm {action}: {message}").located(**where)
    if failure in ("repository", "plain-http-registry"):
        return SourceError(
            f"helm {action}: {message}",
            hint="check the chart repository URL and that it is reachable from here",
        ).located(**where)
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
    root: Path | None = None,
    take_ownership: bool = False,
    force_replace: bool = False,
    skip_schema_validation: bool = False,
) -> HelmRelease:
    """helm upgrade --install against the cluster; returns the new release revision and status.

    TAKE_OWNERSHIP adopts existing objects helm did not create (fleet.yaml
    helm.takeOwnership); FORCE_REPLACE replaces objects whose immutable fields
    change (helm.force).
    """
    command = HelmCommand(kubeconfig=kubeconfig, kubecontext=context, timeout=helm_timeout)
    async with prepared_chart(
        chart, source_dir, command=command, app=app, cluster=cluster, root=root
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
        if take_ownership:
            args.append("--take-ownership")
        if force_replace:
            args.append("--force-replace")
        if skip_schema_validation:
            args.append("--skip-schema-validation")
        if description:
            args += ["--description", description]
        try:
            raw = await command.run(args, json.dumps(dict(values or {}), default=str).encode())
        except pyhelm3.Error as err:
            raise _release_error(
                err,
                app=app,
                cluster=cluster,
                release=release,
                action="upgrade --install",
                chart=chart,
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


_TEST_SUITE = re.compile(r"^TEST SUITE:\s+(\S+)\s*$", re.MULTILINE)
_TEST_PHASE = re.compile(r"^Phase:\s+(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class HelmTestResult:
    """What `helm test` reported: each test that ran and its phase, and helm's error, if any."""

    tests: tuple[tuple[str, str], ...]
    error: str | None = None


def _test_suites(stdout: bytes) -> tuple[tuple[str, str], ...]:
    # helm prints the release status, then per test: "TEST SUITE: <name>", two time
    # lines and "Phase: <Succeeded|Failed|...>".
    text = stdout.decode(errors="replace")
    names = list(_TEST_SUITE.finditer(text))
    found = []
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(text)
        phase = _TEST_PHASE.search(text, match.end(), end)
        found.append((match.group(1), phase.group(1) if phase else "Unknown"))
    return tuple(found)


async def helm_test(
    *,
    release: str,
    namespace: str,
    kubeconfig: Path,
    context: str | None = None,
    app: str | None = None,
    cluster: str | None = None,
    helm_timeout: str = "5m",
) -> HelmTestResult:
    """helm test RELEASE: the chart's test hooks, run by helm on the cluster.

    A test that fails is part of the result (with helm's message), not an exception;
    an unreachable cluster or a missing release raise.
    """
    command = HelmCommand(kubeconfig=kubeconfig, kubecontext=context, timeout=helm_timeout)
    args = ["test", release, "--namespace", namespace, "--timeout", helm_timeout]
    try:
        raw = await command.run(args)
    except pyhelm3.Error as err:
        mapped = _release_error(err, app=app, cluster=cluster, release=release, action="test")
        if not isinstance(mapped, ApplyError):
            raise mapped from err
        return HelmTestResult(tests=_test_suites(bytes(err.stdout or b"")), error=mapped.message)
    return HelmTestResult(tests=_test_suites(raw))


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
