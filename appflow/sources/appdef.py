"""Find and read app definitions in a checked-out repository.

This module owns discovery (which folders are AppFlows), reading
``appflow.yaml`` and ``fleet.yaml``, YAML parsing with positions, and JSON
Schema validation. Building the model is left to ``appflow.model.appdef``.

Discovery follows Fleet's scanning rules:

* a folder with ``appflow.yaml`` (preferred) or ``fleet.yaml`` is an AppFlow;
* otherwise a folder with ``Chart.yaml`` is a Helm app, one with
  ``kustomization.yaml``/``kustomization.yml``/``Kustomization`` a kustomize
  app, and one holding Kubernetes manifests (``.yaml``/``.yml``/``.json``
  files with apiVersion and kind) a plain-YAML app, all with defaults;
* below an app folder only further ``appflow.yaml``/``fleet.yaml`` start new
  apps (Fleet: "if a subdirectory is found with a fleet.yaml a new bundle is
  defined"); charts, overlays and manifests below belong to the app above;
* hidden folders (``.git``, ``.github``) are never scanned.

Default app names are the folder path relative to the repository root, joined
by '-', lowercased and made a DNS-1123 label (for the root folder: the
repository folder's own name). File names in errors are relative to the root.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from appflow import settings
from appflow.errors import ConfigError, Where
from appflow.model.appdef import (
    AppDefinition,
    HelmSpec,
    JsonPath,
    KustomizeSpec,
    NamedPath,
    Positions,
    SourceKind,
    YamlSpec,
    format_path,
    from_appflow_document,
    from_fleet_document,
    locate,
    named_paths,
)
from appflow.model.limits import document_problem, human_size

if TYPE_CHECKING:
    import jsonschema

APPFLOW_FILE = "appflow.yaml"
FLEET_FILE = "fleet.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@cache
def load_schema() -> dict[str, Any]:
    """The published JSON Schema of appflow.yaml."""
    text = resources.files("appflow").joinpath("schemas/appflow.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


# --- YAML with positions ------------------------------------------------------


# Definitions are small and parsed by PyYAML's own parser (its messages are the
# clearer ones). Manifests found while scanning may be large: libyaml reads them.
_ManifestLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_with_positions(
    text: str, *, file: str
) -> tuple[Any, dict[JsonPath, tuple[int, int]]]:
    """Parse one YAML document; return it and a map JSON path -> (line, column), 1-based.

    For a mapping entry the position is its key's; for a list item the item's.
    Duplicate keys are an error here, though YAML libraries keep the last one
    silently: a second ``values:`` would drop the first without a word. A
    document beyond the limits (nesting, values after alias expansion) is an
    error before anything walks it.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        positions: dict[JsonPath, tuple[int, int]] = {}
        if node is None:
            return None, positions
        data = loader.construct_document(node)
        limits = settings.limits()
        problem = document_problem(data, limits)
        if problem is not None:
            field = "max_yaml_depth" if "nested" in problem else "max_yaml_nodes"
            raise ConfigError(
                f"the document is refused: {problem}",
                where=Where(file=file, line=_start(node)[0]),
                hint=f"the limit is the operator's {limits.setting_name(field)}",
            )
        positions[()] = _start(node)
        _record(node, (), positions, file=file)
        return data, positions
    except RecursionError as err:
        # The composer recurses once per level of nesting.
        raise ConfigError(
            "the document is refused: it is nested too deeply", where=Where(file=file)
        ) from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = f"invalid YAML: {err.problem or err.context}"
        if err.problem and err.context and err.context_mark:
            message += f" ({err.context} on line {err.context_mark.line + 1})"
        raise ConfigError(
            message,
            where=Where(
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            ),
        ) from err
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {err}", where=Where(file=file)) from err
    finally:
        loader.dispose()


def _start(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _record(
    node: Node, path: JsonPath, positions: dict[JsonPath, tuple[int, int]], *, file: str
) -> None:
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            key = key_node.value
            line, column = _start(key_node)
            if key in seen and key != "<<":
                raise ConfigError(
                    f"key {key!r} appears twice (first on line {seen[key]})",
                    where=Where(
                        file=file, line=line, column=column, field=format_path((*path, key))
                    ),
                )
            seen[key] = line
            positions[(*path, key)] = (line, column)
            _record(value_node, (*path, key), positions, file=file)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            positions[(*path, index)] = _start(item)
            _record(item, (*path, index), positions, file=file)


# --- schema validation ----------------------------------------------------------


def validate_appflow_document(
    doc: Any, *, file: str, positions: Mapping[JsonPath, tuple[int, int]] | None = None
) -> None:
    """Check ``doc`` against the appflow.yaml schema; report every violation at once.

    The ConfigError's place is the first violation (by line); its message lists
    all of them, each as ``file:line: field: problem``.
    """
    # jsonschema costs a fresh process a tenth of a second: only apps with an
    # appflow.yaml pay for it.
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    problems: list[tuple[int, str, JsonPath, str]] = []
    for error in validator.iter_errors(doc):
        for path, message in _explain(error):
            line, _ = locate(positions, path)
            problems.append((line or 0, format_path(path), path, message))
    if not problems:
        return
    problems.sort(key=lambda p: (p[0], p[1]))
    first_line, first_field, first_path, _ = problems[0]
    _, column = locate(positions, first_path)
    lines = [
        f"  {file}:{line}: {field or '(top level)'}: {message}"
        for line, field, _, message in problems
    ]
    count = len(problems)
    raise ConfigError(
        f"{count} schema violation{'s' if count > 1 else ''} in {APPFLOW_FILE}:\n"
        + "\n".join(lines),
        where=Where(file=file, line=first_line or None, column=column, field=first_field or None),
        hint="the schema is appflow/schemas/appflow.schema.json",
    )


def _explain(error: jsonschema.ValidationError) -> Iterator[tuple[JsonPath, str]]:
    path: JsonPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(cast(Mapping[str, Any], error.schema).get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                yield (*path, key), f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})"
        return
    description = cast(Mapping[str, Any], error.schema).get("description")
    scalar = not isinstance(error.instance, Mapping | list)
    if error.validator in ("oneOf", "anyOf", "pattern") and scalar and description:
        # A regex or "not valid under any of the given schemas" helps nobody;
        # the field's description says what is expected.
        expected = (description[:1].lower() + description[1:]).rstrip(".")
        yield path, f"{error.instance!r} is not valid: expected {expected}"
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the alternative of the right type: its complaint is the real one.
        relevant = [e for e in error.context if e.validator != "type"] or list(error.context)
        import jsonschema

        best = jsonschema.exceptions.best_match(relevant)
        if best is not None:
            yield from _explain(best)
            return
    yield path, error.message


# --- discovery ------------------------------------------------------------------


def load_app_definitions(root: Path, *, paths: Sequence[str] = ("",)) -> list[AppDefinition]:
    """Every AppFlow defined under ``paths`` (relative to the repository ``root``), sorted by path.

    Raises ConfigError for unreadable definitions, a path outside the
    repository, and two apps with the same name.
    """
    root = root.resolve()
    apps: list[AppDefinition] = []
    seen_folders: set[str] = set()
    for repo_path in paths:
        start = _resolve_repo_path(root, repo_path)
        for app in _scan(root, start, inside_app=False):
            if app.path not in seen_folders:
                seen_folders.add(app.path)
                apps.append(app)
    apps.sort(key=lambda a: a.path)
    by_name: dict[str, AppDefinition] = {}
    for app in apps:
        other = by_name.get(app.name)
        if other is not None:
            raise ConfigError(
                f"two apps are named {app.name!r}: folders {other.path or '.'!r} and {app.path or '.'!r}",
                where=Where(app=app.name, file=app.definition_file or app.path or "."),
                hint="set a distinct name in appflow.yaml or fleet.yaml",
            )
        by_name[app.name] = app
    return apps


def _resolve_repo_path(root: Path, repo_path: str) -> Path:
    relative = PurePosixPath(repo_path.strip("/") or ".")
    start = (root / relative).resolve()
    if start != root and root not in start.parents:
        raise ConfigError(
            f"path {repo_path!r} is outside the repository", where=Where(field="paths")
        )
    if not start.is_dir():
        raise ConfigError(
            f"path {repo_path!r} is not a folder in the repository", where=Where(field="paths")
        )
    return start


def _scan(root: Path, folder: Path, *, inside_app: bool) -> Iterator[AppDefinition]:
    app = _app_in(root, folder, explicit_only=inside_app)
    if app is not None:
        yield app
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and not child.is_symlink():
            yield from _scan(root, child, inside_app=inside_app or app is not None)


def _app_in(root: Path, folder: Path, *, explicit_only: bool) -> AppDefinition | None:
    rel = folder.relative_to(root).as_posix()
    rel = "" if rel == "." else rel
    name = default_app_name(rel, root_name=root.name)
    kind = _folder_kind(folder)
    appflow_file = folder / APPFLOW_FILE
    fleet_file = folder / FLEET_FILE
    if appflow_file.is_file():
        app = _read_appflow(root, appflow_file, path=rel, name=name, kind=kind or "yaml")
        if fleet_file.is_file():
            shadowed = (
                f"{_relative(root, fleet_file)} is ignored: {APPFLOW_FILE} is in the same folder"
            )
            app = _with_warning(app, shadowed)
        return app
    if fleet_file.is_file():
        return _read_fleet(root, fleet_file, path=rel, name=name, kind=kind or "yaml")
    if explicit_only or kind is None:
        return None
    return AppDefinition(
        name=name,
        path=rel,
        kind=kind,
        helm=HelmSpec() if kind == "helm" else None,
        kustomize=KustomizeSpec() if kind == "kustomize" else None,
        yaml=YamlSpec() if kind == "yaml" else None,
        origin="defaults",
    )


def _with_warning(app: AppDefinition, warning: str) -> AppDefinition:
    return replace(app, warnings=(*app.warnings, warning))


def _folder_kind(folder: Path) -> SourceKind | None:
    """What the folder's own files make it, as Fleet decides: chart, kustomize, manifests."""
    if (folder / "Chart.yaml").is_file():
        return "helm"
    if any((folder / name).is_file() for name in KUSTOMIZATION_FILES):
        return "kustomize"
    for file in sorted(folder.iterdir()):
        candidate = file.is_file() and file.suffix in MANIFEST_SUFFIXES
        if candidate and file.name not in (APPFLOW_FILE, FLEET_FILE) and _looks_like_manifest(file):
            return "yaml"
    return None


def _looks_like_manifest(file: Path) -> bool:
    """Whether any document in ``file`` is a mapping with apiVersion and kind.

    Files that are not valid YAML are not manifests here (values files and
    templates often are not); rendering reports them if they are in an app.
    """
    limits = settings.limits()
    loader = _ManifestLoader("")
    try:
        if file.stat().st_size > limits.max_file_bytes:
            return False
        loader = _ManifestLoader(file.read_text("utf-8"))
        while loader.check_node():
            doc = loader.construct_document(loader.get_node())
            # Nothing walks the document here, but a pathological one is not a manifest.
            if document_problem(doc, limits) is not None:
                return False
            if isinstance(doc, Mapping) and "apiVersion" in doc and "kind" in doc:
                return True
    except (OSError, yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return False
    finally:
        loader.dispose()
    return False


def default_app_name(path: str, *, root_name: str = "root") -> str:
    """'apps/Web_Frontend' -> 'apps-web-frontend': a DNS-1123 label from a folder path.

    Names longer than 63 characters are cut and given a short hash of the full
    path, so two long folders do not collide (Fleet does the same).
    """
    raw = path.replace("/", "-") if path else root_name
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower())
    name = re.sub(r"-+", "-", name).strip("-") or "root"
    if len(name) > 63:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = name[:54].rstrip("-") + "-" + digest
    return name


def _relative(root: Path, file: Path) -> str:
    return file.relative_to(root).as_posix()


def _read_document(
    root: Path, file: Path
) -> tuple[dict[str, Any], dict[JsonPath, tuple[int, int]], str]:
    shown = _relative(root, file)
    limits = settings.limits()
    try:
        size = file.stat().st_size
        if size > limits.max_file_bytes:
            raise ConfigError(
                f"the file is {human_size(size)}; files larger than "
                f"{human_size(limits.max_file_bytes)} are refused",
                where=Where(file=shown),
                hint=f"the limit is the operator's {limits.setting_name('max_file_bytes')}",
            )
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read: {err}", where=Where(file=shown)) from err
    doc, positions = load_yaml_with_positions(text, file=shown)
    if doc is None:
        return {}, positions, shown
    if not isinstance(doc, dict):
        raise ConfigError(
            f"must be a mapping of fields, not {type(doc).__name__}",
            where=Where(file=shown, line=1),
        )
    return doc, positions, shown


def _read_appflow(
    root: Path, file: Path, *, path: str, name: str, kind: SourceKind
) -> AppDefinition:
    doc, positions, shown = _read_document(root, file)
    validate_appflow_document(doc, file=shown, positions=positions)
    app = from_appflow_document(
        doc, path=path, file=shown, default_name=name, default_kind=kind, positions=positions
    )
    check_named_paths(root, app, positions=positions)
    return app


def _read_fleet(root: Path, file: Path, *, path: str, name: str, kind: SourceKind) -> AppDefinition:
    doc, positions, shown = _read_document(root, file)
    app = from_fleet_document(
        doc, path=path, file=shown, default_name=name, default_kind=kind, positions=positions
    )
    check_named_paths(root, app, positions=positions)
    return app


# --- paths a definition names ---------------------------------------------------------

_EXPECTED = {
    "chart": "a chart folder (with Chart.yaml) or a chart archive (.tgz)",
    "values-file": "a values file",
    "kustomize-dir": "a folder with a kustomization.yaml",
    "overlay": "a folder under overlays/",
}


def check_named_paths(root: Path, app: AppDefinition, *, positions: Positions | None) -> None:
    """Every local path APP's definition names exists, is what it should be, and stays in ROOT.

    ROOT is the source root: the checkout of a repository, or the local folder
    registered. Paths are resolved (symlinks followed) before they are
    compared, so neither ``../..`` nor a link can name a folder of the host.
    Errors name the definition file, the line and the field.
    """
    root = root.resolve()
    app_dir = root / PurePosixPath(app.path) if app.path else root
    for named in named_paths(app):
        relative = f"overlays/{named.value}" if named.role == "overlay" else named.value
        problem = _path_problem(root, app_dir / relative, named)
        if problem is None:
            continue
        message, hint = problem
        line, column = locate(positions, named.field)
        raise ConfigError(
            message,
            where=Where(
                app=app.name,
                file=app.definition_file,
                line=line,
                column=column,
                field=format_path(named.field),
            ),
            hint=hint,
        )


def _path_problem(root: Path, path: Path, named: NamedPath) -> tuple[str, str | None] | None:
    """What is wrong with PATH for its role, or None."""
    if named.role == "overlay" and (
        not named.value or "/" in named.value or "\\" in named.value or named.value in (".", "..")
    ):
        return f"overlay {named.value!r} is not a folder name under overlays/", None
    if "\0" in named.value:  # no file system takes it, and resolve() raises ValueError
        return f"{named.value!r} is not a path: it holds a NUL character", None
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        return (
            f"{named.value!r} points outside the repository (to {resolved})",
            "every path in an app definition must stay inside the repository or folder it came from",
        )
    shown = resolved.relative_to(root).as_posix() or "."
    if named.role == "chart":
        if resolved.is_file() and resolved.name.endswith((".tgz", ".tar.gz")):
            return None
        if not resolved.is_dir():
            return f"chart folder {shown} does not exist", f"expected {_EXPECTED['chart']}"
        if not (resolved / "Chart.yaml").is_file():
            return f"chart folder {shown} has no Chart.yaml", f"expected {_EXPECTED['chart']}"
    elif named.role == "values-file":
        if not resolved.is_file():
            return f"values file {shown} does not exist", None
    elif not resolved.is_dir():
        what = "kustomize folder" if named.role == "kustomize-dir" else "overlay folder"
        return f"{what} {shown} does not exist", f"expected {_EXPECTED[named.role]}"
    elif named.role == "kustomize-dir" and not any(
        (resolved / name).is_file() for name in KUSTOMIZATION_FILES
    ):
        return (
            f"kustomize folder {shown} has no kustomization.yaml",
            f"expected {_EXPECTED['kustomize-dir']}",
        )
    return None
