"""The install form of a catalog chart: fields from its values.schema.json and questions.yaml,
and the values a submitted form means.

Pure. The questions come first, under their groups, with their labels and ``show_if``;
then every other leaf of the schema, grouped by its top-level key. A leaf is a scalar
(text, number, switch, choice) or, for maps, lists and free objects, a YAML/JSON text
area. Only values that differ from the chart's defaults are kept, so an install records
what the person chose and later chart versions still bring their own defaults. The
browser runs the same parsing and the same schema (static/app.js) before it sends
anything; the server parses again and the engine validates on every target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

FieldKind = Literal["string", "integer", "number", "boolean", "enum", "yaml", "password"]
GENERAL = "General"

Path = tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class FormField:
    """One input of the form, for the value at PATH."""

    path: Path
    label: str
    kind: FieldKind
    description: str = ""
    default: Any = None
    required: bool = False
    options: tuple[Any, ...] = ()
    group: str = GENERAL
    show_if: str = ""
    """Rancher's ``show_if`` (``a.b=true&&c=x``): the field shows only while it holds."""

    @property
    def name(self) -> str:
        """The form field name: ``v:`` and the path as a JSON pointer."""
        return "v:/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in self.path)

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def choices(self) -> list[tuple[str, str]]:
        """(form value, label) of each option of a choice: the value is the option as JSON,
        so that 1 and "1" stay apart."""
        return [(json.dumps(o), str(o)) for o in self.options]

    def shown_default(self) -> str:
        """The default as the input shows it."""
        return shown_value(self, self.default)


def shown_value(f: FormField, value: Any) -> str:
    if value is None:
        return ""
    if f.kind == "yaml":
        return json.dumps(value, indent=2) if value not in ({}, []) else json.dumps(value)
    if f.kind == "enum":
        return json.dumps(value)
    if f.kind == "boolean":
        return "true" if value else "false"
    return str(value)


def value_at(values: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """SCHEMA with a local ``$ref`` (``#/$defs/x``) followed."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/") and seen < 10:
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _kind(schema: Mapping[str, Any]) -> FieldKind:
    if "enum" in schema:
        return "enum"
    types = schema.get("type")
    if isinstance(types, list):
        # e.g. a quantity: ["string", "integer", "number"]; typed as text, kept as text.
        return "string" if "string" in types else "number" if "number" in types else "yaml"
    if types in ("string", "integer", "number", "boolean"):
        return types  # type: ignore[no-any-return]
    return "yaml"


def _question_kind(question: Mapping[str, Any]) -> FieldKind:
    return {
        "boolean": "boolean",
        "int": "integer",
        "float": "number",
        "enum": "enum",
        "password": "password",
        "listofstrings": "yaml",
    }.get(str(question.get("type", "string")), "string")  # type: ignore[return-value]


def form_fields(
    schema: Mapping[str, Any] | None,
    questions: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any],
) -> list[FormField]:
    """The form of a chart: its questions, then every other leaf of its values schema."""
    fields: list[FormField] = []
    taken: set[Path] = set()

    def ask(question: Mapping[str, Any], show_if: str) -> None:
        path = tuple(str(question["variable"]).split("."))
        condition = "&&".join(c for c in (show_if, str(question.get("show_if") or "")) if c)
        fields.append(
            FormField(
                path=path,
                label=str(question.get("label") or question["variable"]),
                kind=_question_kind(question),
                description=str(question.get("description") or ""),
                default=value_at(defaults, path),
                required=bool(question.get("required")),
                options=tuple(question.get("options") or ()),
                group=str(question.get("group") or "Questions"),
                show_if=condition,
            )
        )
        taken.add(path)
        sub_if = question.get("show_subquestion_if")
        for sub in question.get("subquestions") or ():
            parent = f"{question['variable']}={str(sub_if).lower()}" if sub_if is not None else ""
            ask(sub, "&&".join(c for c in (condition, parent) if c))

    for q in questions:
        ask(q, "")
    if schema:
        walk(schema, schema, (), False, fields, taken, defaults)
    return fields


def walk(
    node: Mapping[str, Any],
    root: Mapping[str, Any],
    path: Path,
    required: bool,
    out: list[FormField],
    taken: set[Path],
    defaults: Mapping[str, Any],
) -> None:
    node = _resolve(node, root)
    properties = node.get("properties")
    if isinstance(properties, Mapping) and properties and node.get("type", "object") == "object":
        needed = set(node.get("required") or ())
        for key, sub in properties.items():
            if isinstance(sub, Mapping):
                walk(sub, root, (*path, str(key)), key in needed, out, taken, defaults)
        return
    if not path or path in taken:
        return
    kind = _kind(node)
    out.append(
        FormField(
            path=path,
            label=path[-1],
            kind=kind,
            description=str(node.get("description") or ""),
            default=value_at(defaults, path),
            required=required,
            options=tuple(node.get("enum") or ()),
            group=path[0] if len(path) > 1 else GENERAL,
        )
    )


def groups(fields: Sequence[FormField]) -> list[tuple[str, list[FormField]]]:
    """FIELDS by group, groups in order of first appearance."""
    out: dict[str, list[FormField]] = {}
    for f in fields:
        out.setdefault(f.group, []).append(f)
    return list(out.items())


@dataclass(frozen=True, kw_only=True)
class Submission:
    """What a submitted form means: the values that differ from the defaults, and the
    fields that could not be read (by field name)."""

    values: dict[str, Any]
    errors: dict[str, str]
    raw: dict[str, str]


def parse(fields: Sequence[FormField], form: Mapping[str, str]) -> Submission:
    """The values FORM gives FIELDS. A switch that is absent is off (browsers send only
    checked boxes); an empty number is not set; everything else is as typed."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    raw: dict[str, str] = {}
    for f in fields:
        text = form.get(f.name)
        if f.kind == "boolean":
            raw[f.name] = "true" if text is not None else "false"
            value: Any = text is not None
        else:
            if text is None:
                continue
            raw[f.name] = text
            try:
                value = _typed(f, text)
            except ValueError as err:
                errors[f.name] = f"{f.dotted}: {err}"
                continue
            if value is None:
                continue
        if value != f.default:
            _put(values, f.path, value)
    return Submission(values=values, errors=errors, raw=raw)


def _typed(f: FormField, text: str) -> Any:
    if f.kind in ("string", "password"):
        return text
    if f.kind in ("integer", "number"):
        if not text.strip():
            return None
        try:
            return int(text) if f.kind == "integer" else float(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a{'n integer' if f.kind == 'integer' else ' number'}"
            ) from None
    if f.kind == "enum":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text  # an option typed by hand: the schema's enum judges it
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"not valid YAML or JSON{where}") from None


def _put(values: dict[str, Any], path: Path, value: Any) -> None:
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def field_for(fields: Sequence[FormField], path: Sequence[str | int]) -> FormField | None:
    """The field a problem at PATH belongs to: the same path, the field holding it (a YAML
    area), or the first field under it (a required object)."""
    at = tuple(str(p) for p in path)
    if not at:
        return None
    best: FormField | None = None
    for f in fields:
        if f.path == at:
            return f
        if at[: len(f.path)] == f.path and (best is None or len(f.path) > len(best.path)):
            best = f
    if best is not None:
        return best
    return next((f for f in fields if f.path[: len(at)] == at), None)
