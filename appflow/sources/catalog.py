"""Catalog sources: the local ``catalog/`` folder, Helm HTTP repositories, chart archives.

* ``load_catalog(dir)`` reads every ``<dir>/<app>/app.yaml`` (checked against
  ``appflow/schemas/catalog-app.schema.json``) with its ``values.schema.json``,
  ``questions.yaml`` and ``README.md``.
* Catalog repositories (``appflow catalog repo add``) are ``CatalogRepoRecord``s in the
  store: name, URL, user name and the *path* of a password file and CA file, never a
  secret itself. Functions here take them as arguments.
* ``fetch_index`` downloads a repository's ``index.yaml`` with ``If-None-Match``
  / ``If-Modified-Since`` and keeps it, plus a parsed JSON copy that loads in
  milliseconds, under ``cache_dir()/catalog/<repo>/``. Indexes larger than
  ``MAX_INDEX_BYTES`` or that are not YAML are refused with a clear error.
* ``download_chart`` fetches a chart archive, refuses it unless its sha256
  equals the index's ``digest``, and extracts it (safely) to a folder keyed by
  that digest; ``snapshot_chart`` copies a local chart folder the same way, so
  an install keeps rendering the chart it was installed from.

OCI charts are not fetched here: helm pulls them (``appflow.render.helm``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import ssl
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
import jsonschema
import yaml

import appflow
from appflow.errors import ConfigError, NotFoundError, SourceError, Where
from appflow.model.catalog import (
    CatalogEntry,
    ChartIndex,
    ChartSource,
    ChartVersion,
    index_from_data,
    index_to_data,
    parse_index,
    questions_of,
    schema_validator,
)
from appflow.model.giturl import redact_url
from appflow.model.records import CatalogRepoRecord
from appflow.paths import cache_dir, data_dir
from appflow.sources.folders import folder_digest

MAX_INDEX_BYTES = 50 * 1024 * 1024
MAX_CHART_BYTES = 100 * 1024 * 1024
MAX_CHART_FILES = 10_000
DEFAULT_INDEX_MAX_AGE = 300.0
"""Seconds a cached index is used without asking the server (`catalog repo update` forces)."""

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def default_catalog_dir() -> Path:
    """APPFLOW_CATALOG_DIR; else the checkout's ``catalog/``; else ``data_dir()/catalog``."""
    override = os.environ.get("APPFLOW_CATALOG_DIR")
    if override:
        return Path(override)
    checkout = Path(appflow.__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "catalog").is_dir():
        return checkout / "catalog"
    return data_dir() / "catalog"


def app_schema() -> dict[str, Any]:
    text = resources.files("appflow.schemas").joinpath("catalog-app.schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", where=Where(file=str(path))) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(
            f"is not valid YAML: {getattr(err, 'problem', None) or err}",
            where=Where(file=str(path), line=mark.line + 1 if mark else None),
        ) from err


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", where=Where(file=str(path))) from err
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"is not valid JSON: {err.msg}", where=Where(file=str(path), line=err.lineno)
        ) from err


def chart_meta(folder: Path) -> dict[str, Any]:
    """Chart.yaml of the chart in FOLDER."""
    data = _read_yaml(folder / "Chart.yaml")
    if not isinstance(data, dict) or not data.get("name") or not data.get("version"):
        raise ConfigError(
            "Chart.yaml needs a name and a version", where=Where(file=str(folder / "Chart.yaml"))
        )
    return data


def chart_values(folder: Path) -> dict[str, Any]:
    """The chart's default values (values.yaml), {} when it has none."""
    path = folder / "values.yaml"
    if not path.is_file():
        return {}
    data = _read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("values.yaml must be a mapping", where=Where(file=str(path)))
    return data


def chart_schema(folder: Path) -> dict[str, Any] | None:
    path = folder / "values.schema.json"
    if not path.is_file():
        return None
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError("must be a JSON object", where=Where(file=str(path)))
    return data


def app_yaml_errors(document: Any, *, file: str) -> list[ConfigError]:
    """Every way DOCUMENT (a parsed app.yaml) breaks the catalog-app schema."""
    validator = jsonschema.Draft202012Validator(app_schema())
    found = []
    for err in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path]):
        at = ".".join(str(p) for p in err.absolute_path) or None
        found.append(ConfigError(err.message, where=Where(file=file, field=at)))
    return found


def load_entry(folder: Path, *, check_schema: bool = True) -> CatalogEntry:
    """The catalog entry in FOLDER; ConfigError naming the file and field when it is broken.

    CHECK_SCHEMA false skips checking that values.schema.json is a valid JSON
    Schema (the slow part): listings do not need it, installs check it anyway.
    """
    app_file = folder / "app.yaml"
    document = _read_yaml(app_file)
    errors = app_yaml_errors(document, file=str(app_file))
    if errors:
        raise errors[0]
    assert isinstance(document, dict)
    if document["name"] != folder.name:
        raise ConfigError(
            f"name {document['name']!r} differs from the folder name {folder.name!r}",
            where=Where(file=str(app_file), field="name"),
        )
    raw_chart = document["chart"]
    chart = ChartSource(
        path=raw_chart.get("path"),
        repo=raw_chart.get("repo"),
        name=raw_chart.get("name"),
        oci=raw_chart.get("oci"),
        version=raw_chart.get("version"),
    )
    schema_file = folder / "values.schema.json"
    schema = chart_schema(folder) if schema_file.is_file() else None
    if schema is not None and check_schema:
        try:
            schema_validator(schema)
        except ConfigError as err:
            raise err.located(file=str(schema_file)) from None
    questions_file = folder / "questions.yaml"
    questions = (
        questions_of(_read_yaml(questions_file), file=str(questions_file))
        if questions_file.is_file()
        else ()
    )
    readme_file = folder / "README.md"
    readme = readme_file.read_text(encoding="utf-8") if readme_file.is_file() else ""
    versions: tuple[str, ...] = ()
    app_version = ""
    if chart.path is not None:
        chart_dir = folder / chart.path
        if not (chart_dir / "Chart.yaml").is_file():
            raise ConfigError(
                f"chart.path {chart.path!r} holds no Chart.yaml",
                where=Where(file=str(app_file), field="chart.path"),
            )
        meta = chart_meta(chart_dir)
        versions = (str(meta["version"]),)
        app_version = str(meta.get("appVersion") or "")
    return CatalogEntry(
        name=document["name"],
        display_name=document["displayName"],
        description=" ".join(str(document["description"]).split()),
        category=document["category"],
        keywords=tuple(document.get("keywords") or ()),
        icon=str(document.get("icon") or ""),
        maintainers=tuple(document.get("maintainers") or ()),
        home=str(document.get("home") or ""),
        chart=chart,
        version=str(document["version"]),
        upgrade_policy=document.get("upgradePolicy", "manual"),
        min_kube_version=document.get("minKubeVersion"),
        folder=str(folder.resolve()),
        schema=schema,
        questions=questions,
        readme=readme,
        versions=versions,
        app_version=app_version,
    )


@dataclass(frozen=True)
class Problem:
    """One broken catalog entry: its folder and what is wrong."""

    folder: Path
    error: ConfigError


def load_catalog(
    directory: Path, *, check_schema: bool = True
) -> tuple[list[CatalogEntry], list[Problem]]:
    """Every entry under DIRECTORY (sorted by name) and the folders that could not be read."""
    if not directory.is_dir():
        return [], []
    entries: list[CatalogEntry] = []
    problems: list[Problem] = []
    for folder in sorted(directory.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")):
            continue
        if not (folder / "app.yaml").is_file():
            continue
        try:
            entries.append(load_entry(folder, check_schema=check_schema))
        except ConfigError as err:
            problems.append(Problem(folder, err))
    return entries, problems


# --- catalog repositories --------------------------------------------------------------------


def check_repo(repo: CatalogRepoRecord) -> None:
    """Refuse a catalog repository whose URL or files cannot work, before it is recorded."""
    scheme = urlparse(repo.url).scheme
    if scheme not in ("http", "https", "oci"):
        raise ConfigError(
            f"{redact_url(repo.url)!r} is not an http(s):// Helm repository or an oci:// registry",
            where=Where(field="url"),
            hint=f"appflow catalog repo add {repo.name} https://...",
        )
    for f in (repo.password_file, repo.ca_file):
        if f and not Path(f).is_file():
            raise ConfigError(f"{f} does not exist or is not a file", where=Where(file=f))


def forget_index(name: str) -> None:
    """Drop the cached index of repository NAME (it was removed)."""
    shutil.rmtree(_index_dir(name), ignore_errors=True)


def get_repo(repos: Sequence[CatalogRepoRecord], name: str) -> CatalogRepoRecord:
    """Registered repository NAME among REPOS."""
    for repo in repos:
        if repo.name == name:
            return repo
    raise NotFoundError(
        f"no catalog repository named {name!r}", hint="see `appflow catalog repo list`"
    )


def _index_dir(key: str) -> Path:
    return cache_dir() / "catalog" / "repos" / key


def repo_for_url(repos: Sequence[CatalogRepoRecord], url: str) -> CatalogRepoRecord:
    """A registered repository with URL, else an anonymous one keyed by the URL's digest."""
    for repo in repos:
        if repo.url.rstrip("/") == url.rstrip("/"):
            return repo
    return CatalogRepoRecord(name="url-" + hashlib.sha256(url.encode()).hexdigest()[:16], url=url)


def repo_for_chart(
    repos: Sequence[CatalogRepoRecord], name: str | None, url: str
) -> CatalogRepoRecord:
    """The repository a chart came from: registered NAME, else the one serving URL."""
    if name and not name.startswith("url-"):
        return get_repo(repos, name)
    return repo_for_url(repos, url)


def _client(repo: CatalogRepoRecord, *, timeout: float = 30.0) -> httpx.Client:
    verify: ssl.SSLContext | bool = True
    if repo.ca_file:
        verify = ssl.create_default_context(cafile=repo.ca_file)
    auth: tuple[str, str] | None = None
    if repo.username:
        password = ""
        if repo.password_file:
            try:
                password = Path(repo.password_file).read_text().strip()
            except OSError as err:
                raise ConfigError(
                    f"cannot read the password file of repository {repo.name}: {err.strerror}",
                    where=Where(file=repo.password_file),
                ) from err
        auth = (repo.username, password)
    return httpx.Client(verify=verify, auth=auth, timeout=timeout, follow_redirects=True)


@dataclass(frozen=True, kw_only=True)
class FetchedIndex:
    """A repository index and how it was obtained."""

    index: ChartIndex
    status: str
    """'cached' (not asked), 'not-modified' (304) or 'downloaded'."""


def cached_index(repo: CatalogRepoRecord) -> ChartIndex | None:
    """The parsed index kept from the last fetch, without any network call."""
    path = _index_dir(repo.name) / "index.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    remembered = _parsed.get(path)
    if remembered is not None and remembered[0] == stamp and remembered[1] == repo.url:
        return remembered[2]
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("url") != repo.url:
        return None
    index = index_from_data(data["entries"])
    _parsed[path] = (stamp, repo.url, index)
    return index


# Parsed indexes by cache file, valid while the file's mtime is unchanged: one
# process (the daemon, a benchmark) parses a 1,000-chart index once.
_parsed: dict[Path, tuple[int, str, ChartIndex]] = {}


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB"
    return f"{count / 1024:.0f} KiB"


def _read_bounded(response: httpx.Response, limit: int, *, what: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(
            f"{what} is {_size(int(declared))}, more than the {_size(limit)} appflow accepts"
        )
    chunks = io.BytesIO()
    for chunk in response.iter_bytes():
        chunks.write(chunk)
        if chunks.tell() > limit:
            raise _too_large(f"{what} is larger than the {_size(limit)} appflow accepts")
    return chunks.getvalue()


def _too_large(message: str) -> SourceError:
    error = SourceError(message, hint="is the URL right? a Helm index this large is unusual")
    error.retryable = False
    return error


def parse_index_bytes(raw: bytes, *, source: str) -> dict[str, tuple[ChartVersion, ...]]:
    """RAW index.yaml bytes, parsed; SourceError (not retryable) when it is not an index."""
    try:
        document = yaml.load(raw, Loader=_YAML_LOADER)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise _bad_index(f"{source} is not valid YAML{at}: {getattr(err, 'problem', err)}") from err
    try:
        return parse_index(document, source=source)
    except ConfigError as err:
        raise _bad_index(str(err)) from err


def _bad_index(message: str) -> SourceError:
    error = SourceError(message, hint="check the repository URL: it must serve a Helm index.yaml")
    error.retryable = False
    return error


def fetch_index(
    repo: CatalogRepoRecord,
    *,
    max_age: float = DEFAULT_INDEX_MAX_AGE,
    max_bytes: int = MAX_INDEX_BYTES,
) -> FetchedIndex:
    """REPO's index: from the cache when younger than MAX_AGE, else asked for conditionally."""
    if repo.is_oci:
        raise ConfigError(
            f"repository {repo.name} is an OCI registry: it has no index.yaml",
            hint="install its charts by reference: appflow catalog install REPO/CHART --version V",
        )
    folder = _index_dir(repo.name)
    meta_path = folder / "meta.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
    if meta.get("url") != repo.url:
        meta = {}
    cached = cached_index(repo) if meta else None
    if cached is not None and time.time() - float(meta.get("fetched", 0)) < max_age:
        return FetchedIndex(index=cached, status="cached")
    url = repo.url.rstrip("/") + "/index.yaml"
    shown = redact_url(url)  # errors never print a password written into the URL
    headers = {}
    if cached is not None and meta.get("etag"):
        headers["If-None-Match"] = str(meta["etag"])
    if cached is not None and meta.get("last_modified"):
        headers["If-Modified-Since"] = str(meta["last_modified"])
    try:
        with _client(repo) as client, client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and cached is not None:
                meta["fetched"] = time.time()
                meta_path.write_text(json.dumps(meta))
                return FetchedIndex(index=cached, status="not-modified")
            if response.status_code in (401, 403):
                error = SourceError(
                    f"repository {repo.name}: {shown} answered {response.status_code}",
                    hint="check --username and --password-file",
                )
                error.retryable = False
                raise error
            if response.status_code != 200:
                raise SourceError(
                    f"repository {repo.name}: {shown} answered {response.status_code}"
                )
            raw = _read_bounded(response, max_bytes, what=f"index.yaml of repository {repo.name}")
            etag = response.headers.get("etag")
            last_modified = response.headers.get("last-modified")
    except httpx.HTTPError as err:
        raise SourceError(f"repository {repo.name}: cannot fetch {shown}: {err}") from err
    index = parse_index_bytes(raw, source=f"index.yaml of repository {repo.name}")
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / "index.yaml", raw)
    _atomic_write(
        folder / "index.json",
        json.dumps({"url": repo.url, "entries": index_to_data(index)}).encode(),
    )
    meta = {"url": repo.url, "etag": etag, "last_modified": last_modified, "fetched": time.time()}
    _atomic_write(meta_path, json.dumps(meta).encode())
    return FetchedIndex(index=index, status="downloaded")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def repo_entries(repo: CatalogRepoRecord, index: ChartIndex) -> list[CatalogEntry]:
    """The charts of a catalog repository as catalog entries named REPO/CHART."""
    entries = []
    for name, versions in sorted(index.items()):
        if not versions:
            continue
        latest = versions[0]
        entries.append(
            CatalogEntry(
                name=f"{repo.name}/{name}",
                display_name=name,
                description=latest.description,
                keywords=latest.keywords,
                icon=latest.icon,
                home=latest.home,
                chart=ChartSource(repo=repo.url, name=name),
                version="*",
                repo=repo.name,
                versions=tuple(v.version for v in versions),
                app_version=latest.app_version,
            )
        )
    return entries


# --- chart archives ------------------------------------------------------------------------


def charts_dir() -> Path:
    return cache_dir() / "catalog" / "charts"


def chart_url(repo_url: str, version: ChartVersion) -> str:
    if not version.urls:
        raise SourceError(f"the index lists no URL for chart {version.name} {version.version}")
    # Relative URLs are relative to the repository (helm's rule).
    return urljoin(repo_url.rstrip("/") + "/", version.urls[0])


def download_chart(
    repo: CatalogRepoRecord, url: str, *, digest: str, chart: str, max_bytes: int = MAX_CHART_BYTES
) -> Path:
    """The chart at URL, verified against DIGEST (sha256 hex) and extracted; its folder.

    A chart already extracted under the same digest is not downloaded again.
    """
    if not digest:
        error = SourceError(
            f"the index gives no digest for chart {chart}: appflow installs only verified charts",
            hint="regenerate the index with `helm repo index`",
        )
        error.retryable = False
        raise error
    target = charts_dir() / digest
    found = _chart_folder(target)
    if found is not None:
        return found
    shown = redact_url(url)
    try:
        with _client(repo) as client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise SourceError(f"chart {chart}: {shown} answered {response.status_code}")
            raw = _read_bounded(response, max_bytes, what=f"chart archive {shown}")
    except httpx.HTTPError as err:
        raise SourceError(f"chart {chart}: cannot download {shown}: {err}") from err
    actual = hashlib.sha256(raw).hexdigest()
    if actual != digest.lower():
        error = SourceError(
            f"chart {chart}: the archive {shown} has sha256 {actual}, but the index says {digest}; "
            "refused, nothing installed",
            hint="the repository or something between it and you changed the archive",
        )
        error.retryable = False
        raise error
    return extract_chart(raw, target, chart=chart)


def _chart_folder(target: Path) -> Path | None:
    if not target.is_dir():
        return None
    for child in target.iterdir():
        if (child / "Chart.yaml").is_file():
            return child
    return None


def extract_chart(raw: bytes, target: Path, *, chart: str) -> Path:
    """Extract the chart archive RAW into TARGET; SourceError when it is not a chart archive."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as archive:
                members = archive.getmembers()
                if len(members) > MAX_CHART_FILES:
                    raise _corrupt(chart, f"it holds {len(members)} files")
                archive.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as err:
            raise _corrupt(chart, str(err)) from err
        found = _chart_folder(Path(tmp))
        if found is None:
            raise _corrupt(chart, "it has no <chart>/Chart.yaml")
        if target.exists():
            shutil.rmtree(target)
        Path(tmp).rename(target)
        os.makedirs(tmp, exist_ok=True)  # TemporaryDirectory removes it on exit
    result = _chart_folder(target)
    assert result is not None
    return result


def _corrupt(chart: str, why: str) -> SourceError:
    error = SourceError(f"chart {chart}: the archive is not a valid chart archive: {why}")
    error.retryable = False
    return error


def snapshot_chart(folder: Path) -> tuple[Path, str]:
    """A copy of the chart FOLDER keyed by its content digest, and that digest."""
    digest = folder_digest(folder)
    target = charts_dir() / f"local-{digest}"
    found = _chart_folder(target)
    if found is not None:
        return found, digest
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".snapshot-") as tmp:
        shutil.copytree(folder, Path(tmp) / chart_meta(folder)["name"], symlinks=False)
        if target.exists():
            shutil.rmtree(target)
        Path(tmp).rename(target)
        os.makedirs(tmp, exist_ok=True)
    result = _chart_folder(target)
    assert result is not None
    return result, digest


def file_values(paths: Sequence[Path]) -> list[tuple[Mapping[str, Any], str]]:
    """Each --values FILE, parsed, with its origin label."""
    layers: list[tuple[Mapping[str, Any], str]] = []
    for path in paths:
        data = _read_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError("a values file must hold a mapping", where=Where(file=str(path)))
        layers.append((data, f"from --values {path}"))
    return layers
