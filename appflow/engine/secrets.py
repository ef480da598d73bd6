"""The secrets stage of a sync: an app's SOPS inputs, decrypted for one cluster, and kept out
of everything appflow records.

For each cluster, before anything is rendered (so before anything is applied,
on any cluster: a failure here blocks the revision everywhere):

1. **Find** the SOPS files among the app's inputs: every file of the app folder
   for plain YAML and kustomize apps that have a ``decryption`` section, the
   values files for a Helm app (and a catalog install's encrypted values). Each
   must be marked for decryption in ``appflow.yaml`` (``decryption.paths``), and
   each file a mark names must be encrypted: a mistake either way is an error
   naming the file, never a silent apply of ciphertext or of an unencrypted
   secret. An app without a ``decryption`` section is not searched (no file is
   read twice for the apps that have no secrets); its render is checked for
   ciphertext instead, and only when some is found is the folder searched, to
   name the file.
2. **Decrypt** them with the identities the cluster holds (its own keys and its
   groups'), in memory. A cluster without a key for a file fails with the file
   and its recipients named.
3. **Render.** Plain YAML and kustomize render the ciphertext (Flux's
   kustomize-controller does the same: decrypt after the build), so their
   renders stay in the render cache safely. A Helm app whose values are
   encrypted (or marked sensitive in the chart's values.schema.json) is
   rendered from plaintext values passed on stdin, and that render is never
   cached.
4. **Reveal**: every encrypted value the render carried is replaced by its
   plaintext, and the ``sops`` metadata removed (``model.sops.reveal``).

The plaintext lives in the DesiredState for that cluster and is applied from
memory. Every value is given to ``appflow.redaction`` before anything can quote
it, and the DesiredState's redactor hides them in what is recorded: the
revision's objects in the store are redacted (a rollback renders the
revision's source again to get them back, see :func:`restore_revision`), and so
are diffs, events and messages.

Decrypted files are kept in memory for the engine's life, per file content and
key (a fleet of clusters sharing a group key decrypts each file once); nothing
decrypted is ever written to disk.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appflow import redaction
from appflow.errors import AppflowError, ConfigError, DecryptionError, Where
from appflow.model.appdef import AppDefinition, EncryptedValues
from appflow.model.objects import Manifest, ObjectRef
from appflow.model.records import ClusterRecord
from appflow.model.redact import Redactor, sensitive_paths, values_at
from appflow.model.sops import (
    TOKEN_PREFIX,
    Decrypted,
    is_sops_metadata,
    leftover_tokens,
    reveal,
    reveal_secret_data,
    strip_metadata,
)
from appflow.model.targeting import ClusterGroup, selector_matches
from appflow.render.documents import check_file_size, parse_yaml_documents
from appflow.render.types import RenderRequest, canonical_json, revision_of
from appflow.secrets.age import Identity
from appflow.secrets.decrypt import (
    Scan,
    SopsFile,
    decrypt_file,
    parse_sops_content,
    read_sops_file,
    scan_folder,
)
from appflow.secrets.keys import KeyRing

if TYPE_CHECKING:
    pass

_MEMORY = 256
"""Decrypted files kept in memory (per file content and key)."""
_SCANS = 64
"""Folder scans remembered (per source digest)."""
MARK_HINT = "list it (or a glob matching it) under decryption.paths in the app's appflow.yaml"


@dataclass(frozen=True, kw_only=True)
class Opened:
    """An app's render request for one cluster, with its secret inputs decrypted."""

    request: RenderRequest
    """What to render: for Helm, the values files merged with the decrypted ones."""
    cacheable: bool
    """False when the render sees plaintext: it must not reach the render cache."""
    redactor: Redactor
    tokens: Mapping[str, Any] = field(default_factory=dict, repr=False)
    envelopes: Mapping[str, str] = field(default_factory=dict, repr=False)
    unsearched: Path | None = None
    """The app folder, when it was not searched for SOPS files (the app marks none for
    decryption): the render is checked for ciphertext instead, which costs no file reads."""

    def revision(self, objects: Sequence[Manifest], fallback: str) -> str:
        """The Revision of OBJECTS: FALLBACK, or for sensitive ones the digest of what is
        recorded, so that re-encrypting the same values (new recipients) is no new revision."""
        if not self.redactor.sensitive:
            return fallback
        return revision_of(self.redactor.redact(o) for o in objects)


class SecretsStage:
    """Decrypts apps' SOPS inputs with the identities held in KEYS."""

    def __init__(self, *, keys: KeyRing | None = None) -> None:
        self.keys = keys or KeyRing()
        self._scans: OrderedDict[str, Scan] = OrderedDict()
        self._scanning: dict[str, asyncio.Future[Scan]] = {}
        self._decrypted: OrderedDict[tuple[str, str], Decrypted] = OrderedDict()
        self._decrypting: dict[tuple[str, str], asyncio.Lock] = {}

    def identities(
        self, cluster: ClusterRecord, groups: Mapping[str, ClusterGroup]
    ) -> list[Identity]:
        """The identities CLUSTER holds: its own, then those of the groups it belongs to."""
        found = self.keys.identities(scope="cluster", owner=cluster.name)
        for name in sorted(groups):
            if selector_matches(groups[name].selector, cluster.labels):
                found += self.keys.identities(scope="group", owner=name)
        return found

    async def open(
        self,
        definition: AppDefinition,
        request: RenderRequest,
        *,
        cluster: ClusterRecord,
        groups: Mapping[str, ClusterGroup],
    ) -> Opened:
        """Find, check and decrypt REQUEST's secret inputs for CLUSTER."""
        base = redaction.redactor()
        if request.kind != "helm" and definition.decryption is None:
            # Nothing to decrypt: reveal() looks for ciphertext in the render instead.
            return Opened(
                request=request, cacheable=True, redactor=base, unsearched=request.source_dir
            )
        encrypted, inline = await self._encrypted(definition, request, cluster=cluster.name)
        decrypted = await self.decrypt_all(
            [*encrypted, *inline], cluster=cluster, groups=groups, app=definition.name
        )
        from_files, from_record = decrypted[: len(encrypted)], decrypted[len(encrypted) :]
        secret_values: list[Any] = [v for d in decrypted for v in d.secrets]
        opened_request, cacheable, sensitive = request, True, list[Any]()
        if request.kind == "helm":
            opened_request, sensitive = await asyncio.to_thread(
                _helm_request, request, from_files, app=definition.name
            )
            if from_record:
                # A catalog install's encrypted values files, over its other values.
                layers = [values_of(d, app=definition.name) for d in from_record]
                opened_request = replace(
                    opened_request, values=merge_helm_values(opened_request.values, *layers)
                )
            cacheable = not decrypted and not sensitive
        secret_values += sensitive
        # Before anything renders or applies with them: no error may quote them.
        redaction.remember(secret_values)
        tokens, envelopes = tokens_of(decrypted)
        return Opened(
            request=opened_request,
            cacheable=cacheable,
            redactor=base.with_values(secret_values),
            tokens=tokens,
            envelopes=envelopes,
        )

    async def encrypted_inputs(
        self, definition: AppDefinition, request: RenderRequest
    ) -> list[SopsFile]:
        """REQUEST's SOPS-encrypted inputs (files of the app folder or values files, and a
        catalog install's encrypted values), without decrypting them; the same errors as
        ``open`` for a file marked wrongly. A hub asks this to know which pull clusters must
        render an app themselves (``appflow.hub.publish``)."""
        if request.kind != "helm" and definition.decryption is None:
            return []
        encrypted, inline = await self._encrypted(definition, request, cluster=request.cluster)
        return [*encrypted, *inline]

    async def _encrypted(
        self, definition: AppDefinition, request: RenderRequest, *, cluster: str
    ) -> tuple[list[SopsFile], list[SopsFile]]:
        """The marked SOPS files among REQUEST's inputs, and the definition's encrypted values."""
        files = await self._inputs(definition, request)
        marks = definition.decryption.paths if definition.decryption else ()
        problems = _mark_problems(definition, files, marks)
        if problems:
            raise _combined(problems, app=definition.name, cluster=cluster)
        encrypted = [f for f in files.encrypted if _marked(f.path, marks)]
        held = definition.decryption.values if definition.decryption else ()
        return encrypted, [parse_sops_content(v.content.encode(), name=v.name) for v in held]

    async def _inputs(self, definition: AppDefinition, request: RenderRequest) -> Scan:
        # Both scans read files of the source its digest names (and of a chart fetched by
        # version): the same inputs give the same scan, so a fleet's clusters share one.
        if request.kind != "helm":
            key = f"{request.source_digest}\n{request.source_dir}"
            return await self._scan(key, partial(scan_folder, request.source_dir))
        chart = request.helm
        key = "\n".join(
            [
                "helm",
                request.source_digest,
                str(request.source_dir),
                str(chart.path if chart is not None else None),
                str(chart.version if chart is not None else None),
                *map(str, request.values_files),
            ]
        )
        return await self._scan(key, partial(_helm_inputs, definition, request))

    async def _scan(self, key: str, scan: Callable[[], Scan]) -> Scan:
        """SCAN's answer for KEY's inputs: run once for the clusters that ask at the same time
        (a fleet's renders start together, and each used to scan before any remembered)."""
        found = self._scans.get(key)
        if found is not None:
            return found
        running = self._scanning.get(key)
        if running is None:
            running = self._scanning[key] = asyncio.ensure_future(asyncio.to_thread(scan))
            running.add_done_callback(partial(_forget_scan, self._scanning, key))
        # Shielded: one cluster's cancelled render does not cancel the others' scan.
        found = await asyncio.shield(running)
        _remember(self._scans, key, found, _SCANS)
        return found

    async def decrypt_all(
        self,
        files: Sequence[SopsFile],
        *,
        cluster: ClusterRecord,
        groups: Mapping[str, ClusterGroup],
        app: str,
    ) -> list[Decrypted]:
        """FILES decrypted for CLUSTER, in order; every failure reported at once."""
        if not files:
            return []
        identities = self.identities(cluster, groups)
        results = await asyncio.gather(
            *(self._decrypt(f, identities, cluster.name) for f in files), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, AppflowError)]
        if errors:
            raise _combined(errors, app=app, cluster=cluster.name)
        decrypted: list[Decrypted] = []
        for r in results:
            if isinstance(r, BaseException):
                raise r
            decrypted.append(r)
        return decrypted

    async def _decrypt(self, file: SopsFile, identities: list[Identity], cluster: str) -> Decrypted:
        usable = sorted(i.recipient for i in identities if i.recipient in file.recipients)
        if not usable:
            # Refused before sops runs, naming this cluster and the file's recipients.
            return await decrypt_file(file, identities=identities, holder=f"cluster {cluster}")
        key = (file.digest, ",".join(usable))
        # Clusters sharing a key (a group's) render at once: one sops run, the others wait.
        lock = self._decrypting.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._decrypted.get(key)
            if found is None:
                found = await decrypt_file(file, identities=identities, holder=f"cluster {cluster}")
                _remember(self._decrypted, key, found, _MEMORY)
        if not lock.locked():
            self._decrypting.pop(key, None)
        return found

    async def reveal(
        self, opened: Opened, objects: Sequence[Manifest], *, definition: AppDefinition
    ) -> tuple[Manifest, ...]:
        """OBJECTS (rendered from ciphertext) with the plaintext of OPENED put back."""
        if not opened.tokens and not opened.envelopes:
            if opened.unsearched is not None and _any_encrypted(objects):
                # Ciphertext in an app that marks nothing for decryption: name its files.
                found = await asyncio.to_thread(scan_folder, opened.unsearched)
                unmarked = _mark_problems(definition, found, ())
                if unmarked:
                    raise _combined(unmarked, app=definition.name, cluster=None)
                raise DecryptionError(
                    "the rendered objects hold SOPS-encrypted values from outside the app folder",
                    where=Where(app=definition.name),
                    hint="move the encrypted file into the app folder and list it under "
                    "decryption.paths",
                )
            return tuple(objects)
        return reveal_objects(objects, tokens=opened.tokens, envelopes=opened.envelopes)


def reveal_objects(
    objects: Sequence[Manifest], *, tokens: Mapping[str, Any], envelopes: Mapping[str, str]
) -> tuple[Manifest, ...]:
    """OBJECTS with every encrypted value put back from TOKENS (and ENVELOPES: whole dotenv
    and binary files); an error naming the objects that still hold ciphertext. The push
    engine and the pull agent (which decrypts on the edge) both reveal with this."""
    out: list[Manifest] = []
    problems: list[str] = []
    for obj in objects:
        encrypted_identity = any(
            isinstance(v, str) and v in tokens for v in (obj.get("kind"), obj.get("apiVersion"))
        )
        shown = reveal(strip_metadata(obj), tokens)
        shown = reveal_secret_data(shown, tokens, envelopes)
        left = leftover_tokens(shown)
        if left or is_sops_metadata(shown.get("sops")):
            problems.append(f"{ObjectRef.of(shown)} ({', '.join(left[:3]) or 'sops'})")
            continue
        if encrypted_identity:
            shown = _namespace_fixed(shown)
        out.append(shown)
    if problems:
        raise DecryptionError(
            "objects still hold encrypted values after decryption: " + "; ".join(problems),
            hint="an encrypted value must come from a file inside the app folder listed under "
            "decryption.paths, unchanged by patches",
        )
    seen: set[ObjectRef] = set()
    for obj in out:
        ref = ObjectRef.of(obj)
        if ref in seen:
            raise DecryptionError(f"{ref} is defined twice once decrypted")
        seen.add(ref)
    return tuple(out)


def tokens_of(decrypted: Sequence[Decrypted]) -> tuple[dict[str, Any], dict[str, str]]:
    """The tokens and envelopes (whole dotenv/binary files) of decrypted files, for reveal."""
    tokens = {t: v for d in decrypted for t, v in d.tokens.items()}
    envelopes = {
        d.ciphertext_text: str(d.documents[0])
        for d in decrypted
        if d.format in ("dotenv", "binary")
    }
    return tokens, envelopes


def _any_encrypted(objects: Sequence[Manifest]) -> bool:
    """Whether any of OBJECTS holds anything sops wrote (``_encrypted``).

    Looked at as one JSON text first: a token (and sops metadata, whose MAC is one) is
    plain ASCII there, and a Secret's data is the only place it hides (base64). Without
    either, no object needs the walk; with one, the walk says which holds what.
    """
    if not any(o.get("kind") == "Secret" and o.get("data") for o in objects):
        try:
            text = json.dumps(objects, default=str)
        except (TypeError, ValueError):
            text = TOKEN_PREFIX  # keys JSON cannot hold (a YAML date as a key): walk
        if TOKEN_PREFIX not in text:
            return False
    return any(_encrypted(o) for o in objects)


def _encrypted(value: Any) -> bool:
    """True when VALUE (a rendered object) holds anything sops wrote: a token, including
    base64-encoded in a Secret's data (kustomize's secretGenerator), or sops metadata."""
    if isinstance(value, Mapping):
        if is_sops_metadata(value.get("sops")):
            return True
        data = value.get("data") if value.get("kind") == "Secret" else None
        if isinstance(data, Mapping) and any(_decoded_token(v) for v in data.values()):
            return True
        return any(_encrypted(v) for v in value.values())
    if isinstance(value, list):
        return any(_encrypted(v) for v in value)
    return isinstance(value, str) and TOKEN_PREFIX in value


def _decoded_token(encoded: Any) -> bool:
    if not isinstance(encoded, str):
        return False
    try:
        return TOKEN_PREFIX in base64.b64decode("".join(encoded.split()), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False


def _forget_scan(running: dict[str, asyncio.Future[Scan]], key: str, _done: Any) -> None:
    running.pop(key, None)


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _marked(path: str, marks: Sequence[str]) -> bool:
    """True when PATH (relative to the app folder) is named by one of MARKS: a glob, or a folder."""
    for mark in marks:
        pattern = mark.strip().removeprefix("./")
        if pattern in ("", "."):
            return True
        if pattern.endswith("/"):
            if path.startswith(pattern):
                return True
        elif fnmatch.fnmatchcase(path, pattern) or path.startswith(pattern + "/"):
            return True
    return False


_CHECKED_SUFFIXES = (".yaml", ".yml", ".json", ".env")


def _mark_problems(
    definition: AppDefinition, files: Scan, marks: Sequence[str]
) -> list[AppflowError]:
    problems: list[AppflowError] = []
    for found in files.encrypted:
        if not _marked(found.path, marks):
            hint = MARK_HINT
            if definition.origin == "fleet.yaml":
                hint = "fleet.yaml cannot mark files for decryption; describe the app with an appflow.yaml"
            problems.append(
                DecryptionError(
                    "the file is SOPS-encrypted but not marked for decryption; it would be applied "
                    "as ciphertext",
                    where=Where(file=found.path),
                    hint=hint,
                )
            )
    for name in files.plain:
        if _marked(name, marks) and name.endswith(_CHECKED_SUFFIXES):
            problems.append(
                DecryptionError(
                    "the file is marked for decryption but is not SOPS-encrypted: "
                    "a secret committed in plain text?",
                    where=Where(file=name),
                    hint="encrypt it with `appflow secret encrypt`, or take it out of decryption.paths",
                )
            )
    return problems


def _combined(errors: Sequence[AppflowError], *, app: str, cluster: str | None) -> AppflowError:
    if len(errors) == 1:
        return errors[0].located(app=app, cluster=cluster)
    lines = "\n".join(f"  - {e}" for e in errors)
    return DecryptionError(
        f"{len(errors)} encrypted inputs cannot be used:\n{lines}",
        where=Where(app=app, cluster=cluster),
    )


def _namespace_fixed(obj: Manifest) -> Manifest:
    """A whole-file-encrypted object of a cluster-scoped kind, without the namespace the render
    gave it (it could not tell the kind while it was encrypted)."""
    from appflow.render.documents import CLUSTER_SCOPED_KINDS

    meta = obj.get("metadata")
    if obj.get("kind") in CLUSTER_SCOPED_KINDS and isinstance(meta, dict) and "namespace" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "namespace"}}
    return obj


# --- Helm ------------------------------------------------------------------------------------


def _app_relative(request: RenderRequest, path: Path) -> str:
    try:
        return path.resolve().relative_to(request.source_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _chart_dir(request: RenderRequest) -> Path | None:
    chart = request.helm
    if chart is None or chart.path is None:
        return None
    return chart.path if chart.path.is_absolute() else request.source_dir / chart.path


def _helm_inputs(definition: AppDefinition, request: RenderRequest) -> Scan:
    """The values files of a Helm app, and the chart's own values.yaml (never encrypted)."""
    encrypted: list[SopsFile] = []
    plain: list[str] = []
    for path in request.values_files:
        name = _app_relative(request, path)
        found = read_sops_file(path, name)
        if found is None:
            plain.append(name)
        else:
            encrypted.append(found)
    chart = _chart_dir(request)
    if chart is not None and (chart / "values.yaml").is_file():
        own = read_sops_file(chart / "values.yaml", _app_relative(request, chart / "values.yaml"))
        if own is not None:
            raise DecryptionError(
                "a chart's own values.yaml cannot be encrypted: helm reads it as it is",
                where=Where(app=definition.name, file=own.path),
                hint="keep defaults in values.yaml and secret values in an encrypted file "
                "listed in helm.valuesFiles",
            )
    return Scan(encrypted=tuple(encrypted), plain=tuple(plain))


def merge_helm_values(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Layers merged as helm merges ``-f`` files: maps key by key, the rest replaced, and a
    ``null`` kept, so that it still removes the chart's default as helm does."""
    merged: dict[str, Any] = {}
    for layer in layers:
        _merge_into(merged, layer)
    return merged


def _merge_into(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        current = base.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge_into(current, value)
        elif isinstance(value, Mapping):
            base[key] = merge_helm_values(value)
        else:
            base[key] = value


def _values_document(doc: Any, *, name: str, app: str) -> Mapping[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError("a values file must hold a mapping", where=Where(app=app, file=name))
    return doc


def values_of(decrypted: Decrypted, *, app: str) -> Mapping[str, Any]:
    """The values of a decrypted values file (one YAML or JSON document holding a mapping)."""
    if len(decrypted.documents) > 1 or decrypted.format not in ("yaml", "json"):
        raise ConfigError(
            "an encrypted values file must hold one YAML or JSON document",
            where=Where(app=app, file=decrypted.file),
        )
    first = decrypted.documents[0] if decrypted.documents else None
    return _values_document(first, name=decrypted.file, app=app)


def _helm_request(
    request: RenderRequest, decrypted: Sequence[Decrypted], *, app: str
) -> tuple[RenderRequest, list[Any]]:
    """The request with decrypted values files merged into its values, and the values the
    chart's values.schema.json marks sensitive."""
    by_name = {d.file: d for d in decrypted}
    values = dict(request.values)
    if decrypted:
        layers: list[Mapping[str, Any]] = []
        for path in request.values_files:
            name = _app_relative(request, path)
            found = by_name.get(name)
            if found is not None:
                layers.append(values_of(found, app=app))
                continue
            layers.append(
                _values_document(_read_values(path, name=name, app=app), name=name, app=app)
            )
        # One merged layer on stdin takes the files' place: helm never reads plaintext from disk.
        values = merge_helm_values(*layers, request.values)
        request = replace(request, values=values, values_files=())
    return request, _schema_sensitive(request, values)


def _read_values(path: Path, *, name: str, app: str) -> Any:
    """The values file at PATH (shown as NAME), parsed within the operator's limits."""
    check_file_size(path, shown=name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read values file: {err}", where=Where(app=app, file=name)
        ) from err
    documents = parse_yaml_documents(text, file=name)
    return documents[0].data if documents else None


def _schema_sensitive(request: RenderRequest, values: Mapping[str, Any]) -> list[Any]:
    chart = _chart_dir(request)
    schema_file = chart / "values.schema.json" if chart is not None else None
    if schema_file is None or not schema_file.is_file():
        return []
    try:
        import json

        paths = sensitive_paths(json.loads(schema_file.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return []  # helm reports a broken schema itself
    if not paths:
        return []
    defaults: Any = {}
    if (chart_values := schema_file.parent / "values.yaml").is_file():
        try:
            defaults = _read_values(chart_values, name=str(chart_values), app=request.app) or {}
        except AppflowError:
            defaults = {}  # helm reports a broken values.yaml itself
    merged = merge_helm_values(defaults if isinstance(defaults, Mapping) else {}, values)
    return values_at(merged, paths)


# --- catalog installs ----------------------------------------------------------------------------


def split_encrypted(files: Sequence[Path]) -> tuple[tuple[Path, ...], tuple[EncryptedValues, ...]]:
    """A catalog install's --values files: the plain ones, and the SOPS-encrypted ones as
    ciphertext (the record keeps that, never their plaintext)."""
    plain: list[Path] = []
    encrypted: list[EncryptedValues] = []
    for path in files:
        found = read_sops_file(path, path.name)
        if found is None:
            plain.append(path)
        else:
            encrypted.append(EncryptedValues(name=path.name, content=found.content.decode()))
    return tuple(plain), tuple(encrypted)


def plain_sensitive_paths(schema: Any, values: Mapping[str, Any]) -> list[str]:
    """Paths of VALUES (given in plain text) that SCHEMA marks sensitive, e.g. ``auth.password``."""
    return [
        ".".join("*" if part is None else part for part in path)
        for path in sensitive_paths(schema)
        if values_at(values, [path])
    ]


async def decrypted_values(
    stage: SecretsStage,
    encrypted: Sequence[EncryptedValues],
    *,
    app: str,
    targets: Sequence[ClusterRecord],
    groups: Mapping[str, ClusterGroup],
) -> list[dict[str, Any]]:
    """ENCRYPTED values files decrypted for every target (each must hold a key), merged in
    order; the distinct results (targets holding different keys decrypt the same values)."""
    if not encrypted:
        return []
    files = [parse_sops_content(v.content.encode(), name=v.name) for v in encrypted]
    distinct: dict[str, dict[str, Any]] = {}
    for cluster in targets:
        found = await stage.decrypt_all(files, cluster=cluster, groups=groups, app=app)
        merged = merge_helm_values(*(values_of(d, app=app) for d in found))
        redaction.remember(v for d in found for v in d.secrets)
        distinct.setdefault(canonical_json(merged), merged)
    return list(distinct.values())
