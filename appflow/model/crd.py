"""JSON Schema to Kubernetes structural OpenAPI schemas, for the hub's CustomResourceDefinitions.

appflow's formats are JSON Schema 2020-12 (``appflow/schemas/*.json``); a CRD wants a
*structural* OpenAPI v3 schema: every node typed, no ``$ref``, no ``if``/``then``, junctors
(``oneOf``/``anyOf``/``allOf``/``not``) that only restate value checks of fields declared
outside them. ``structural()`` translates one into the other so that the CRDs are generated from
the same files the standalone formats use:

- ``$ref`` (in the same file or another, such as ``appflow.schema.json#/$defs/labelSelector``)
  is inlined; a description next to a ``$ref`` wins over the target's, being more specific.
- ``additionalProperties: false`` is dropped: the API server prunes unknown fields, and its
  strict field validation (kubectl's default) refuses them naming the field.
- A free-form object (Helm values) gets ``x-kubernetes-preserve-unknown-fields``.
- A ``oneOf``/``anyOf`` of objects becomes one object with every branch's fields; the branches
  keep only which fields they require, so "exactly one of name or selector" still holds.
- A ``oneOf``/``anyOf`` of an integer and a string becomes ``x-kubernetes-int-or-string`` with
  each branch's checks (JSON Schema applies ``minimum`` only to numbers and ``pattern`` only
  to strings, so merging them loses nothing).
- A ``oneOf``/``anyOf`` whose branches only require fields stays as it is (a value check).
- ``if``/``then``, ``not`` and ``propertyNames`` become CEL rules (``x-kubernetes-validations``)
  with a message saying what is wrong; ``const`` becomes a one-value ``enum``; ``uniqueItems`` a
  set.

The API server estimates every CEL rule's cost and refuses a CRD over budget; a regular
expression per key of a map inside a list is over it. And it evaluates ``pattern`` with Go's
RE2, which has no lookaround or backreferences. The caller may therefore *defer* keywords:
``propertyNames``, or ``pattern`` (only patterns RE2 cannot run are deferred). A deferred
check is left out, the field's description says that appflow checks it when it reads the
resource, and its path is reported, so the controller checks it against the same JSON Schema. Any other keyword without a structural form is refused with its path
(``CrdSchemaError``): a check is never dropped silently. Pure: the caller loads the files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from appflow.errors import ConfigError, Where

Schema = dict[str, Any]

# Keywords copied as they are: OpenAPI v3 means the same by them.
_PASS = frozenset(
    {
        "description",
        "type",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "enum",
        "default",
        "required",
        "title",
    }
)
# Keywords that only name or describe the document.
_DROP = frozenset({"$schema", "$id", "$defs", "$comment", "examples"})
_INT_KEYWORDS = frozenset({"minimum", "maximum"})
_STRING_KEYWORDS = frozenset({"pattern", "minLength", "maxLength", "format"})
# CEL's reserved words; Kubernetes exposes a property with such a name as __name__.
_CEL_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


class CrdSchemaError(ConfigError):
    """A JSON Schema uses a keyword or shape that has no structural OpenAPI equivalent."""


Resolver = Callable[[str, str], tuple[Schema, str]]
"""(reference, file it appears in) -> (the schema it names, the file that schema is in)."""


def registry_resolver(documents: Mapping[str, Schema]) -> Resolver:
    """A resolver over DOCUMENTS (file name -> parsed schema), for refs such as
    ``#/$defs/x``, ``other.json`` and ``other.json#/$defs/x``."""

    def resolve(ref: str, base: str) -> tuple[Schema, str]:
        file, _, pointer = ref.partition("#")
        file = file or base
        if file not in documents:
            raise CrdSchemaError(f"$ref {ref!r} names an unknown file", where=Where(file=base))
        node: Any = documents[file]
        for part in [p for p in pointer.split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise CrdSchemaError(f"$ref {ref!r} names nothing", where=Where(file=base))
            node = node[part]
        if not isinstance(node, dict):
            raise CrdSchemaError(f"$ref {ref!r} is not a schema", where=Where(file=base))
        return node, file

    return resolve


def cel_field(name: str) -> str:
    """How a CEL rule names property NAME of ``self`` (Kubernetes' escaping rules)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    escaped = (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", escaped):
        raise CrdSchemaError(f"property name {name!r} cannot be used in a CEL rule")
    return escaped


def _literal(value: Any) -> str:
    # JSON's string, number and boolean literals are CEL's too.
    return json.dumps(value)


DEFERRED_NOTE = {
    "propertyNames": "Its keys are checked by appflow when it reads the resource.",
    "pattern": "Its pattern is checked by appflow when it reads the resource.",
}
# What Python's re (and JSON Schema's ECMA-262) accepts but RE2 refuses.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\(\?>|\\[1-9]")


def re2_unsupported(pattern: str) -> str | None:
    """The construct of PATTERN that Go's RE2 (the API server's) cannot run, if any."""
    found = _NOT_RE2.search(pattern)
    return found.group(0) if found else None


class _Converter:
    def __init__(self, resolve: Resolver, defer: frozenset[str]) -> None:
        self.resolve = resolve
        self.defer = defer
        self.deferred: list[str] = []
        self._stack: list[str] = []

    def fail(self, path: str, message: str, file: str) -> CrdSchemaError:
        return CrdSchemaError(message, where=Where(file=file, field=path or "(root)"))

    # -- the walk -----------------------------------------------------------------------------

    def convert(self, node: Schema, *, file: str, path: str) -> Schema:
        node, file, followed = self.inline(node, file=file, path=path)
        self._stack.extend(followed)
        try:
            return self.convert_inlined(node, file=file, path=path)
        finally:
            del self._stack[len(self._stack) - len(followed) :]

    def convert_inlined(self, node: Schema, *, file: str, path: str) -> Schema:
        out: Schema = {}
        rules: list[Schema] = list(node.get("x-kubernetes-validations", []))
        notes: list[str] = []
        for key, value in node.items():
            if key in _DROP or key == "x-kubernetes-validations":
                continue
            if key == "pattern" and re2_unsupported(value):
                if key not in self.defer:
                    raise self.fail(
                        path,
                        f"pattern {value!r} uses {re2_unsupported(value)!r}, which the API"
                        " server's RE2 cannot run",
                        file,
                    )
                self.deferred.append(f"{path}:{key}")
                notes.append(DEFERRED_NOTE[key])
            elif key in _PASS or key.startswith("x-kubernetes-"):
                out[key] = value
            elif key == "const":
                out["enum"] = [value]
            elif key == "uniqueItems":
                if value:
                    out["x-kubernetes-list-type"] = "set"
            elif key == "properties":
                out["properties"] = {
                    name: self.convert(sub, file=file, path=f"{path}.{name}")
                    for name, sub in value.items()
                }
            elif key == "items":
                if not isinstance(value, dict):
                    raise self.fail(path, "items must be one schema", file)
                out["items"] = self.convert(value, file=file, path=f"{path}[]")
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out["additionalProperties"] = self.convert(value, file=file, path=f"{path}.*")
                elif value is True:
                    out["x-kubernetes-preserve-unknown-fields"] = True
                # False: pruning and strict field validation refuse unknown fields.
            elif key == "propertyNames" and key in self.defer:
                self.deferred.append(f"{path}:{key}")
                notes.append(DEFERRED_NOTE[key])
            elif key == "propertyNames":
                rules.append(self.key_rule(value, file=file, path=path))
            elif key in ("oneOf", "anyOf"):
                self.junctor(key, value, out, file=file, path=path)
            elif key == "allOf":
                for part in value:
                    rules.extend(self.all_of_part(part, file=file, path=path))
            elif key == "if":
                rules.append(self.implication(node["if"], node.get("then"), file=file, path=path))
            elif key == "then":
                continue  # handled with "if"
            elif key == "not":
                rules.append(self.negation(value, file=file, path=path))
            else:
                raise self.fail(path, f"JSON Schema keyword {key!r} has no CRD equivalent", file)
        if notes:
            out["description"] = " ".join([out.get("description", ""), *notes]).strip()
        self.finish(out, file=file, path=path)
        if rules:
            out["x-kubernetes-validations"] = rules
        return out

    def inline(self, node: Schema, *, file: str, path: str) -> tuple[Schema, str, list[str]]:
        """NODE with its $ref (and the ref's own refs) merged in, the file it ends in, and the
        refs followed (a ref already being expanded further up is a cycle)."""
        node = dict(node)
        followed: list[str] = []
        while "$ref" in node:
            ref = node.pop("$ref")
            target, target_file = self.resolve(ref, file)
            key = f"{target_file}#{id(target)}"
            if key in self._stack or key in followed:
                raise self.fail(path, f"$ref {ref!r} is recursive; CRD schemas cannot be", file)
            followed.append(key)
            merged = dict(target)
            merged.update(node)  # the referring node's own words win
            node, file = merged, target_file
        return node, file, followed

    def finish(self, out: Schema, *, file: str, path: str) -> None:
        """Give every node a type, as structural schemas require."""
        if "type" in out or out.get("x-kubernetes-int-or-string"):
            pass
        elif "enum" in out:
            kinds = {type(v) for v in out["enum"]}
            if kinds == {str}:
                out["type"] = "string"
            elif kinds <= {int}:
                out["type"] = "integer"
            elif kinds == {bool}:
                out["type"] = "boolean"
            else:
                raise self.fail(path, "an enum mixes types", file)
        elif "properties" in out or "additionalProperties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
        elif "x-kubernetes-preserve-unknown-fields" in out:
            pass
        else:
            raise self.fail(path, "the schema names no type", file)
        if (
            out.get("type") == "object"
            and "properties" not in out
            and "additionalProperties" not in out
        ):
            out["x-kubernetes-preserve-unknown-fields"] = True
        if "properties" in out and "additionalProperties" in out:
            raise self.fail(path, "properties and additionalProperties together", file)

    # -- junctors -----------------------------------------------------------------------------

    def junctor(
        self, key: str, branches: list[Schema], out: Schema, *, file: str, path: str
    ) -> None:
        resolved = [self.inline(b, file=file, path=path)[:2] for b in branches]
        types = [b.get("type") for b, _ in resolved]
        if all(set(b) <= {"required"} for b, _ in resolved):
            out[key] = [{"required": list(b.get("required", []))} for b, _ in resolved]
        elif all(t == "object" for t in types):
            # One object with every branch's fields; branches say only what they require.
            props: Schema = {}
            for b, branch_file in resolved:
                for name, sub in b.get("properties", {}).items():
                    converted = self.convert(sub, file=branch_file, path=f"{path}.{name}")
                    if name in props and props[name] != converted:
                        raise self.fail(path, f"branches define {name!r} differently", file)
                    props[name] = converted
            out["type"] = "object"
            out.setdefault("properties", {}).update(props)
            out[key] = [{"required": list(b.get("required", []))} for b, _ in resolved]
        elif sorted(str(t) for t in types) == ["integer", "string"]:
            out["x-kubernetes-int-or-string"] = True
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            for b, _ in resolved:
                allowed = _INT_KEYWORDS if b["type"] == "integer" else _STRING_KEYWORDS
                extra = set(b) - allowed - {"type", "description"}
                if extra:
                    raise self.fail(path, f"cannot carry {sorted(extra)} into int-or-string", file)
                out.update({k: v for k, v in b.items() if k in allowed})
        else:
            raise self.fail(path, f"{key} of {types} has no structural form", file)

    def negation(self, node: Schema, *, file: str, path: str) -> Schema:
        if set(node) != {"required"}:
            raise self.fail(path, "only 'required' is supported inside not", file)
        names = list(node["required"])
        return {
            "rule": "!(" + " && ".join(f"has(self.{cel_field(n)})" for n in names) + ")",
            "message": f"{' and '.join(names)} cannot be set together",
        }

    def all_of_part(self, part: Schema, *, file: str, path: str) -> list[Schema]:
        if set(part) <= {"if", "then"} and "if" in part:
            return [self.implication(part["if"], part.get("then"), file=file, path=path)]
        raise self.fail(path, "allOf supports if/then entries only", file)

    # -- CEL ----------------------------------------------------------------------------------

    def implication(self, when: Schema, then: Schema | None, *, file: str, path: str) -> Schema:
        """``if``/``then`` as a CEL rule: not WHEN, or THEN."""
        if then is None:
            raise self.fail(path, "if without then", file)
        cond, cond_text = self.condition(when, file=file, path=path)
        cons, cons_text, first = self.consequence(then, file=file, path=path)
        rule: Schema = {
            "rule": f"!({cond}) || ({cons})",
            "message": f"{cons_text} when {cond_text}",
        }
        if first:
            rule["fieldPath"] = f".{first}"
        return rule

    def condition(self, when: Schema, *, file: str, path: str) -> tuple[str, str]:
        parts: list[str] = []
        words: list[str] = []
        checked = when.get("properties", {})
        for name in when.get("required", []):
            if name not in checked:
                parts.append(f"has(self.{cel_field(name)})")
                words.append(f"{name} is set")
        for name, sub in checked.items():
            values = sub.get("enum") or ([sub["const"]] if "const" in sub else None)
            if values is None or set(sub) - {"enum", "const"}:
                raise self.fail(path, f"if: only enum/const checks of {name!r} are supported", file)
            field = f"self.{cel_field(name)}"
            parts.append(f"has({field}) && {field} in {_literal(values)}")
            words.append(f"{name} is {' or '.join(str(v) for v in values)}")
        extra = set(when) - {"required", "properties"}
        if extra or not parts:
            raise self.fail(path, f"if: unsupported {sorted(extra) or 'empty condition'}", file)
        return " && ".join(parts), " and ".join(words)

    def consequence(self, then: Schema, *, file: str, path: str) -> tuple[str, str, str | None]:
        parts: list[str] = []
        words: list[str] = []
        required = list(then.get("required", []))
        checked: dict[str, Schema] = then.get("properties", {})
        for name in dict.fromkeys([*required, *checked]):
            field = f"self.{cel_field(name)}"
            must = name in required
            sub = checked.get(name, {})
            unsupported = set(sub) - {"minItems", "maxItems"}
            if unsupported:
                raise self.fail(path, f"then: {sorted(unsupported)} not supported", file)
            checks = [f"has({field})"] if must else []
            phrase = [f"{name} must be set"] if must else []
            if "minItems" in sub:
                size = f"size({field}) >= {int(sub['minItems'])}"
                checks.append(size if must else f"(!has({field}) || {size})")
                phrase.append(f"with at least {sub['minItems']} item(s)")
            if "maxItems" in sub:
                size = f"size({field}) <= {int(sub['maxItems'])}"
                checks.append(size if must else f"(!has({field}) || {size})")
                phrase.append(
                    f"{name} must be empty or absent"
                    if sub["maxItems"] == 0
                    else f"with at most {sub['maxItems']} item(s)"
                )
            parts.extend(checks)
            words.append(" ".join(phrase))
        extra = set(then) - {"required", "properties"}
        if extra or not parts:
            raise self.fail(path, f"then: unsupported {sorted(extra) or 'empty'}", file)
        first = next(iter(dict.fromkeys([*required, *checked])), None)
        return " && ".join(parts), "; ".join(words), first

    def key_rule(self, names: Schema, *, file: str, path: str) -> Schema:
        names = self.inline(names, file=file, path=path)[0]
        pattern = names.get("pattern")
        extra = set(names) - {"pattern", "type", "description", "maxLength"}
        if not pattern or extra:
            raise self.fail(path, "propertyNames supports a pattern only", file)
        check = f"k.matches({_literal(pattern)})"
        if "maxLength" in names:
            check = f"size(k) <= {int(names['maxLength'])} && {check}"
        return {"rule": f"self.all(k, {check})", "message": f"keys must match {pattern}"}


def structural(
    schema: Schema,
    *,
    file: str,
    resolve: Resolver,
    path: str = "",
    defer: frozenset[str] = frozenset(),
    deferred: list[str] | None = None,
) -> Schema:
    """SCHEMA (from FILE) as a structural OpenAPI v3 schema; see the module's docstring.

    Keywords in DEFER are left to the controller; ``path:keyword`` of each is appended to
    DEFERRED."""
    converter = _Converter(resolve, defer)
    out = converter.convert(schema, file=file, path=path)
    if deferred is not None:
        deferred.extend(converter.deferred)
    return out


def leaf_paths(schema: Schema, prefix: str = "") -> list[tuple[str, Schema]]:
    """Every field of a structural schema as (dotted path, its schema), parents first."""
    out: list[tuple[str, Schema]] = []
    for name, sub in schema.get("properties", {}).items():
        here = f"{prefix}.{name}" if prefix else name
        out.append((here, sub))
        target = sub.get("items", sub) if sub.get("type") == "array" else sub
        out.extend(leaf_paths(target, here))
    return out
