"""The marketplace catalog as data: entries, chart indexes, install values and their checks.

Pure: no I/O. ``appflow.sources.catalog`` reads ``catalog/<app>/`` folders and
Helm repository indexes into these types; ``appflow.engine.catalog`` installs.

What lives here:

* ``CatalogEntry`` (one ``catalog/<app>/app.yaml`` with its schema, questions,
  README) and ``ChartVersion`` / ``ChartIndex`` (a Helm repository's
  ``index.yaml``);
* ``resolve_version``: a constraint (or several, all of which must hold) to
  the highest published version, else an error naming the versions that exist;
* ``parse_set``: Helm's ``--set`` syntax, see its docstring for what is supported;
* ``questions_to_schema``: Rancher ``questions.yaml`` to a JSON Schema;
* ``validate_values``: merged values against a JSON Schema, each message naming
  the field path, the offending value, the constraint, and where the value came
  from (``from --set``, ``from --values FILE``, ``chart default`` ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import jsonschema
from jsonschema import Draft7Validator, Draft202012Validator

from appflow.errors import ConfigError, Where
from appflow.model.appdef import JsonPath, format_path
from appflow.model.records import ChartKind, UpgradePolicy
from appflow.model.semver import Version, parse_constraint, parse_version, sort_versions

CHART_DEFAULT = "chart default"
ENTRY_DEFAULT = "catalog default (questions.yaml)"
FROM_SET = "from --set"
PREVIOUS = "from the previous install"
FROM_FORM = "from the install form"

_LISTED_VERSIONS = 20


@dataclass(frozen=True, kw_only=True)
class ChartSource:
    """Where an entry's chart comes from: exactly one of a folder, a repository, OCI."""

    path: str | None = None
    """Folder relative to the entry folder."""
    repo: str | None = None
    """Helm HTTP repository URL (the folder holding index.yaml)."""
    name: str | None = None
    """Chart name in ``repo``."""
    oci: str | None = None
    """``oci://host/path/chart`` without a tag."""
    version: str | None = None
    """A constraint that narrows the entry's own ``version``."""

    @property
    def kind(self) -> ChartKind:
        if self.path is not None:
            return "local"
        if self.oci is not None:
            return "oci"
        return "repo"


@dataclass(frozen=True, kw_only=True)
class ChartVersion:
    """One version of one chart in a Helm repository index."""

    name: str
    version: str
    app_version: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    icon: str = ""
    home: str = ""
    urls: tuple[str, ...] = ()
    digest: str = ""
    """sha256 (hex) of the chart archive, as the index publishes it."""
    created: str = ""


ChartIndex = Mapping[str, tuple[ChartVersion, ...]]
"""Chart name -> its versions, highest first."""


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """One marketplace app: ``catalog/<name>/`` or a chart of a catalog repository."""

    name: str
    display_name: str
    description: str
    category: str = "other"
    keywords: tuple[str, ...] = ()
    icon: str = ""
    maintainers: tuple[Mapping[str, str], ...] = ()
    home: str = ""
    chart: ChartSource = ChartSource(path="chart")
    version: str = "*"
    """Constraint on the chart versions an install may pick."""
    upgrade_policy: UpgradePolicy = "manual"
    min_kube_version: str | None = None
    folder: str = ""
    """The entry folder (absolute), "" for a chart of a catalog repository."""
    repo: str | None = None
    """The catalog repository (``appflow catalog repo add``) the chart is listed in."""
    schema: Mapping[str, Any] | None = None
    """values.schema.json of the entry (None: the chart's own, read when the chart is)."""
    questions: tuple[Mapping[str, Any], ...] = ()
    readme: str = ""
    versions: tuple[str, ...] = ()
    """Versions known without a network call: the local chart's, or the cached index's."""
    app_version: str = ""

    @property
    def constraints(self) -> tuple[str, ...]:
        found = [self.version]
        if self.chart.version:
            found.append(self.chart.version)
        return tuple(c for c in found if c and c != "*")

    @property
    def latest(self) -> str:
        allowed = [v for v in self.versions if allows_all(self.constraints, v)]
        ordered = sort_versions(allowed)
        return ordered[0] if ordered else ""

    def matches(self, *, category: str | None = None, search: str | None = None) -> bool:
        if category and self.category != category:
            return False
        if not search:
            return True
        needle = search.lower()
        haystack = [self.name, self.display_name, self.description, *self.keywords]
        return any(needle in text.lower() for text in haystack)


# --- versions -----------------------------------------------------------------------------


def allows_all(constraints: Sequence[str], version: str) -> bool:
    parsed = parse_version(version)
    if parsed is None:
        return False
    return all(parse_constraint(c).allows(parsed) for c in constraints)


def resolve_version(constraints: Sequence[str], versions: Iterable[str], *, chart: str) -> str:
    """The highest of VERSIONS every constraint allows (no constraint: the highest release).

    Raises ConfigError naming the constraints and the versions that exist.
    """
    parsed = [parse_constraint(c) for c in constraints if c and c != "*"]
    best: tuple[Version, str] | None = None
    known = list(versions)
    for name in known:
        version = parse_version(name)
        if version is None:
            continue
        if not parsed and version.is_prerelease:
            continue
        if all(c.allows(version) for c in parsed) and (best is None or version > best[0]):
            best = (version, name)
    if best is not None:
        return best[1]
    existing = sort_versions(known)
    listed = ", ".join(existing[:_LISTED_VERSIONS])
    if len(existing) > _LISTED_VERSIONS:
        listed += f" (and {len(existing) - _LISTED_VERSIONS} older)"
    wanted = " and ".join(repr(c) for c in constraints if c and c != "*") or "any release"
    raise ConfigError(
        f"no version of chart {chart} matches {wanted}; "
        + (f"versions that exist: {listed}" if existing else "it has no published versions"),
        where=Where(field="version"),
        hint="pick one of the versions listed, or widen --version",
    )


# --- --set ----------------------------------------------------------------------------------

_INDEX = re.compile(r"^(?P<name>.*?)\[(?P<index>\d+)\]$")
_MAX_LIST_INDEX = 65536


def parse_set(items: Sequence[str], *, strings: bool = False) -> dict[str, Any]:
    """Values from Helm ``--set`` arguments (``--set-string`` with STRINGS).

    Supported, as helm's strvals parser does it:

    * ``a.b.c=v`` nested keys; ``a=1,b=2`` several assignments in one argument;
    * ``list[0]=x``, ``list[1].name=y`` list elements (gaps are filled with null);
    * ``a={x,y,z}`` a list of scalars;
    * ``\\,`` ``\\.`` ``\\=`` escape a comma, dot or equals sign in keys and values;
    * typed scalars: ``true``/``false`` (any case) are booleans, ``null`` removes
      the key, ``0`` and integers not starting with 0 are integers; everything
      else, floats included (``1.5``), stays a string, as in helm.

    Not supported: ``--set-file``, ``--set-json``, nested lists ``a[0][1]``.
    """
    values: dict[str, Any] = {}
    for item in items:
        for assignment in _split_unescaped(item, ","):
            _assign(values, assignment, item, strings=strings)
    return values


def _split_unescaped(text: str, sep: str, *, braces: bool = True) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if braces and ch == "{":
            depth += 1
        elif braces and ch == "}":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _typed(text: str, *, strings: bool) -> Any:
    if strings:
        return text
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0" and re.fullmatch(r"-?[0-9]+", text):
        number = int(text)
        if -(2**63) <= number < 2**63:
            return number
    return text


def _set_error(item: str, why: str) -> ConfigError:
    return ConfigError(
        f"--set {item!r}: {why}",
        hint="write key.path=value, list[0]=value or key={a,b}; escape ',' '.' '=' with '\\'",
    )


def _assign(values: dict[str, Any], assignment: str, item: str, *, strings: bool) -> None:
    if not assignment.strip():
        raise _set_error(item, "an assignment is empty (two commas in a row?)")
    key_part, *rest = _split_unescaped(assignment, "=", braces=False)
    if not rest:
        raise _set_error(item, f"{_unescape(assignment)!r} has no '='")
    raw = "=".join(rest)
    path: list[str | int] = []
    for segment in _split_unescaped(key_part, ".", braces=False):
        match = _INDEX.match(segment)
        if match:
            name, index = match.group("name"), int(match.group("index"))
            if index > _MAX_LIST_INDEX:
                raise _set_error(item, f"list index {index} is too large")
            if name:
                path.append(_unescape(name))
            path.append(index)
        elif not segment:
            raise _set_error(item, f"key {_unescape(key_part)!r} has an empty part")
        else:
            path.append(_unescape(segment))
    if not path or isinstance(path[0], int):
        raise _set_error(item, "a key must start with a name")
    value: Any
    if raw.startswith("{") and raw.endswith("}"):
        inner = raw[1:-1]
        value = (
            [_typed(_unescape(v), strings=strings) for v in _split_unescaped(inner, ",")]
            if inner
            else []
        )
    else:
        value = _typed(_unescape(raw), strings=strings)
    _put(values, path, value, item)


def _put(node: Any, path: Sequence[str | int], value: Any, item: str) -> None:
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        assert isinstance(node, list)
        while len(node) <= key:
            node.append(None)
        if not rest:
            node[key] = value
            return
        child = node[key]
        if not isinstance(child, (dict, list)) or isinstance(child, list) != isinstance(
            rest[0], int
        ):
            child = [] if isinstance(rest[0], int) else {}
            node[key] = child
        _put(child, rest, value, item)
        return
    assert isinstance(node, dict)
    if not rest:
        node[key] = value
        return
    child = node.get(key)
    wants_list = isinstance(rest[0], int)
    if not isinstance(child, list if wants_list else dict):
        child = [] if wants_list else {}
        node[key] = child
    _put(child, rest, value, item)


# --- where values came from -------------------------------------------------------------------

Origins = dict[JsonPath, str]


def origins_of(values: Mapping[str, Any], origin: str) -> Origins:
    """Every path in VALUES (maps and leaves) mapped to ORIGIN."""
    found: Origins = {}

    def walk(node: Any, path: JsonPath) -> None:
        if path:
            found[path] = origin
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, (*path, str(k)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(values, ())
    return found


def layer_origins(*layers: tuple[Mapping[str, Any], str]) -> Origins:
    """Origins of values merged from LAYERS (lowest first): the last layer to set a path wins.

    A list or scalar replaces what lower layers had below its path, as merge does.
    """
    result: Origins = {}
    for values, origin in layers:
        mine = origins_of(values, origin)
        for path in mine:
            if not _is_map_at(values, path):
                for old in [p for p in result if len(p) > len(path) and p[: len(path)] == path]:
                    del result[old]
        result.update(mine)
    return result


def _is_map_at(values: Any, path: JsonPath) -> bool:
    node = values
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, Mapping)


def _origin_for(origins: Mapping[JsonPath, str], path: JsonPath) -> str:
    probe = path
    while probe:
        if probe in origins:
            return origins[probe]
        probe = probe[:-1]
    below = sorted({o for p, o in origins.items() if p[: len(path)] == path and len(p) > len(path)})
    return ", ".join(below) or CHART_DEFAULT


# --- validation ------------------------------------------------------------------------------


def schema_validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of SCHEMA's declared draft (2020-12 or 7); 2020-12 when none is declared.

    Raises ConfigError when SCHEMA is not a valid JSON Schema.
    """
    cls = jsonschema.validators.validator_for(schema, default=Draft202012Validator)
    if cls not in (Draft202012Validator, Draft7Validator):
        cls = Draft202012Validator if "2020-12" in str(schema.get("$schema")) else cls
    try:
        cls.check_schema(dict(schema))
    except jsonschema.SchemaError as err:
        at = format_path(tuple(err.absolute_path)) or "(top)"
        raise ConfigError(
            f"values.schema.json is not a valid JSON Schema at {at}: {err.message}"
        ) from err
    validator: jsonschema.protocols.Validator = cls(dict(schema))
    return validator


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_values(
    values: Mapping[str, Any], schema: Mapping[str, Any], *, origins: Mapping[JsonPath, str]
) -> list[str]:
    """Messages for every way VALUES break SCHEMA, in field-path order; [] when they fit.

    Each names the field path, the offending value and the constraint, and ends
    with where the value came from, e.g.
    ``persistence.size: '10X' does not match '^[0-9]+(Mi|Gi)$' (from --set)``.
    Keys that ``additionalProperties: false`` refuses come with the allowed keys.
    """
    return [text for _, text in value_problems(values, schema, origins=origins)]


def value_problems(
    values: Mapping[str, Any], schema: Mapping[str, Any], *, origins: Mapping[JsonPath, str]
) -> list[tuple[JsonPath, str]]:
    """As ``validate_values``, each message with the path of the value it is about
    (the dashboard shows it next to that field)."""
    validator = schema_validator(schema)
    messages: list[tuple[JsonPath, str]] = []
    for error in validator.iter_errors(dict(values)):
        messages.extend(_messages(error, origins))
    messages.sort(key=lambda pair: [str(p) for p in pair[0]])
    seen: set[str] = set()
    unique = []
    for path, text in messages:
        if text not in seen:
            seen.add(text)
            unique.append((path, text))
    return unique


def _messages(
    error: jsonschema.ValidationError, origins: Mapping[JsonPath, str]
) -> list[tuple[JsonPath, str]]:
    path: JsonPath = tuple(error.absolute_path)
    validator = error.validator
    instance = error.instance
    sub = error.schema if isinstance(error.schema, Mapping) else {}
    if validator == "additionalProperties" and isinstance(instance, Mapping):
        properties = cast(Mapping[str, Any], sub.get("properties") or {})
        patterns = list(cast(Mapping[str, Any], sub.get("patternProperties") or {}))
        allowed = ", ".join(sorted(properties)) or "none"
        out = []
        for key in instance:
            if key in properties or any(re.search(p, str(key)) for p in patterns):
                continue
            at = (*path, str(key))
            text = f"{format_path(at)}: unknown key; allowed keys{' at ' + format_path(path) if path else ''}: {allowed}"
            out.append((at, f"{text} ({_origin_for(origins, at)})"))
        if out:
            return out
    if validator == "required" and isinstance(instance, Mapping):
        out = []
        for key in cast(Sequence[str], error.validator_value):
            if key not in instance:
                at = (*path, key)
                out.append((at, f"{format_path(at)}: is required but not set"))
        if out:
            return out
    if validator in ("anyOf", "oneOf") and error.context:
        # Report the branch that got furthest, as jsonschema's best_match does.
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and tuple(best.absolute_path) != path:
            return _messages(best, origins)
    where = format_path(path) or "(top)"
    if validator in ("pattern", "type", "enum", "const", "minimum", "maximum", "format"):
        text = f"{where}: {error.message}"
    elif validator in ("minLength", "maxLength", "minItems", "maxItems"):
        text = f"{where}: {_show(instance)} {error.message.split(' ', 1)[-1] if error.message.startswith(repr(instance)) else error.message}"
    else:
        text = f"{where}: {error.message}"
    return [(path, f"{text} ({_origin_for(origins, path)})")]


# --- questions.yaml ---------------------------------------------------------------------------

_QUESTION_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "multiline": {"type": "string"},
    "password": {"type": "string"},
    "hostname": {"type": "string"},
    "storageclass": {"type": "string"},
    "pvc": {"type": "string"},
    "secret": {"type": "string"},
    "cloudcredential": {"type": "string"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "enum": {},
    "listofstrings": {"type": "array", "items": {"type": "string"}},
}


def questions_of(document: Any, *, file: str = "questions.yaml") -> tuple[Mapping[str, Any], ...]:
    """The question list of a parsed questions.yaml (``questions: [...]``), checked lightly."""
    if document is None:
        return ()
    raw = document.get("questions") if isinstance(document, Mapping) else document
    if not isinstance(raw, list):
        raise ConfigError("must hold a list under 'questions'", where=Where(file=file))
    out: list[Mapping[str, Any]] = []
    for index, q in enumerate(raw):
        if not isinstance(q, Mapping) or not isinstance(q.get("variable"), str):
            raise ConfigError(
                "each question needs a 'variable' (a dotted path into the values)",
                where=Where(file=file, field=f"questions[{index}]"),
            )
        kind = str(q.get("type", "string"))
        if kind not in _QUESTION_TYPES:
            raise ConfigError(
                f"question type {kind!r} is not one of {', '.join(sorted(_QUESTION_TYPES))}",
                where=Where(file=file, field=f"questions[{index}].type"),
            )
        out.append(q)
    return tuple(out)


def _variable_path(variable: str) -> list[str]:
    return [_unescape(p) for p in _split_unescaped(variable, ".", braces=False)]


def _nest(path: Sequence[str], leaf: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    """A schema requiring LEAF at PATH (and the path itself when REQUIRED)."""
    node: dict[str, Any] = dict(leaf)
    for key in reversed(path):
        wrapped: dict[str, Any] = {"properties": {key: node}}
        if required:
            wrapped["required"] = [key]
        node = wrapped
    return node


def _conditions(expression: str) -> dict[str, Any] | None:
    """Rancher ``show_if`` (``a=b&&c=true``) as a schema that holds when it is true."""
    parts = []
    for term in expression.split("&&"):
        key, sep, raw = term.strip().partition("=")
        if not sep or not key:
            return None
        value = _typed(raw.strip(), strings=False)
        # Required: a condition on a value that is not set does not hold.
        parts.append(_nest(_variable_path(key.strip()), {"const": value}, required=True))
    return {"allOf": parts} if len(parts) > 1 else parts[0] if parts else None


def question_schema(question: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one question's value."""
    kind = str(question.get("type", "string"))
    schema: dict[str, Any] = dict(_QUESTION_TYPES.get(kind, {"type": "string"}))
    if kind == "enum" and question.get("options"):
        schema["enum"] = list(question["options"])
    if question.get("description"):
        schema["description"] = str(question["description"])
    if question.get("label"):
        schema["title"] = str(question["label"])
    if "default" in question:
        schema["default"] = question["default"]
    numeric = kind in ("int", "float")
    if question.get("min") is not None:
        schema["minimum" if numeric else "minLength"] = question["min"]
    if question.get("max") is not None:
        schema["maximum" if numeric else "maxLength"] = question["max"]
    if question.get("min_length") is not None:
        schema["minLength"] = question["min_length"]
    if question.get("max_length") is not None:
        schema["maxLength"] = question["max_length"]
    if question.get("valid_chars"):
        schema["pattern"] = f"^(?:{question['valid_chars']})*$"
    if question.get("invalid_chars"):
        schema["not"] = {"pattern": str(question["invalid_chars"])}
    if question.get("required") and schema.get("type") == "string":
        # Rancher's 'required' means the answer may not be empty.
        schema.setdefault("minLength", 1)
    return schema


def questions_to_schema(questions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A draft 2020-12 schema that accepts the answers QUESTIONS allow.

    Unknown keys stay allowed (questions cover a few values, not all). A
    required question with ``show_if`` is required only when its condition holds;
    ``subquestions`` are required only when ``show_subquestion_if`` matches the
    parent's value.
    """
    rules: list[dict[str, Any]] = []

    def add(question: Mapping[str, Any], condition: dict[str, Any] | None) -> None:
        path = _variable_path(str(question["variable"]))
        leaf = question_schema(question)
        show_if = question.get("show_if")
        own = _conditions(str(show_if)) if show_if else None
        when = [c for c in (condition, own) if c]
        required = bool(question.get("required"))
        value_rule = _nest(path, leaf, required=False)
        if required and when:
            # Hidden questions need no answer: only their type holds unconditionally.
            loose = {k: v for k, v in leaf.items() if k != "minLength" or question.get("min")}
            rules.append(_nest(path, loose, required=False))
            guard = when[0] if len(when) == 1 else {"allOf": when}
            rules.append({"if": guard, "then": _nest(path, leaf, required=True)})
        else:
            rules.append(_nest(path, leaf, required=required) if required else value_rule)
        sub_if = question.get("show_subquestion_if")
        for subquestion in question.get("subquestions") or []:
            sub_condition = (
                _nest(path, {"const": sub_if}, required=True) if sub_if is not None else None
            )
            parts = [c for c in (condition, sub_condition) if c]
            add(subquestion, {"allOf": parts} if len(parts) > 1 else parts[0] if parts else None)

    for question in questions:
        add(question, None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "allOf": rules,
    }


def question_defaults(questions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The values the questions' ``default``s give, as nested values (subquestions included)."""
    values: dict[str, Any] = {}

    def add(question: Mapping[str, Any]) -> None:
        if "default" in question and question["default"] is not None:
            path: list[str | int] = list(_variable_path(str(question["variable"])))
            _put(values, path, question["default"], str(question["variable"]))
        for sub in question.get("subquestions") or []:
            add(sub)

    for q in questions:
        add(q)
    return values


def shown(question: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether QUESTION's ``show_if`` holds for VALUES (a prompt asks only shown questions)."""
    expression = question.get("show_if")
    if not expression:
        return True
    condition = _conditions(str(expression))
    if condition is None:
        return True
    return bool(Draft202012Validator(condition).is_valid(dict(values)))


def value_at(values: Mapping[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in _variable_path(dotted):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# --- helm repository index --------------------------------------------------------------------


def parse_index(document: Any, *, source: str) -> dict[str, tuple[ChartVersion, ...]]:
    """A Helm repository index.yaml, parsed, as chart name -> versions (highest first)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("entries"), Mapping):
        raise ConfigError(
            "is not a Helm repository index (no 'entries' mapping)", where=Where(file=source)
        )
    index: dict[str, tuple[ChartVersion, ...]] = {}
    for name, versions in cast(Mapping[str, Any], document["entries"]).items():
        if not isinstance(versions, list):
            raise ConfigError(
                f"entries.{name} must be a list of chart versions", where=Where(file=source)
            )
        parsed: list[ChartVersion] = []
        for v in versions:
            if not isinstance(v, Mapping) or "version" not in v:
                raise ConfigError(
                    f"entries.{name} has a chart version without 'version'",
                    where=Where(file=source),
                )
            parsed.append(
                ChartVersion(
                    name=str(v.get("name") or name),
                    version=str(v["version"]),
                    app_version=str(v.get("appVersion") or ""),
                    description=str(v.get("description") or ""),
                    keywords=tuple(str(k) for k in v.get("keywords") or ()),
                    icon=str(v.get("icon") or ""),
                    home=str(v.get("home") or ""),
                    urls=tuple(str(u) for u in v.get("urls") or ()),
                    digest=str(v.get("digest") or ""),
                    created=str(v.get("created") or ""),
                )
            )
        order = {n: i for i, n in enumerate(sort_versions(p.version for p in parsed))}
        parsed.sort(key=lambda p: order.get(p.version, len(order)))
        index[str(name)] = tuple(parsed)
    return index


def index_document(charts: Iterable[ChartVersion], *, generated: str) -> dict[str, Any]:
    """An index.yaml document (apiVersion v1) listing CHARTS."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for c in charts:
        item: dict[str, Any] = {
            "apiVersion": "v2",
            "name": c.name,
            "version": c.version,
            "appVersion": c.app_version,
            "description": c.description,
            "keywords": list(c.keywords),
            "home": c.home,
            "icon": c.icon,
            "urls": list(c.urls),
            "digest": c.digest,
            "created": c.created or generated,
        }
        entries.setdefault(c.name, []).append({k: v for k, v in item.items() if v not in ("", [])})
    return {"apiVersion": "v1", "entries": entries, "generated": generated}


def index_to_data(index: ChartIndex) -> dict[str, list[dict[str, Any]]]:
    """INDEX as plain JSON data (for the parsed-index cache); ``index_from_data`` reverses it."""
    return {
        name: [
            {
                "name": v.name,
                "version": v.version,
                "app_version": v.app_version,
                "description": v.description,
                "keywords": list(v.keywords),
                "icon": v.icon,
                "home": v.home,
                "urls": list(v.urls),
                "digest": v.digest,
                "created": v.created,
            }
            for v in versions
        ]
        for name, versions in index.items()
    }


def index_from_data(data: Mapping[str, Any]) -> dict[str, tuple[ChartVersion, ...]]:
    return {
        name: tuple(
            ChartVersion(
                **{
                    **v,
                    "keywords": tuple(v.get("keywords") or ()),
                    "urls": tuple(v.get("urls") or ()),
                }
            )
            for v in versions
        )
        for name, versions in data.items()
    }
