"""Find the SOPS files of an app folder and decrypt them, in memory.

This is the decryption step that runs where the keys are: the engine in push
mode, the agent on the edge cluster in pull mode (:func:`decrypt_content` and
:func:`decrypt_manifests` take ciphertext and identities and give plaintext
objects; nothing here needs a store, a cluster or a hub).

A decryption is refused, before sops runs, when none of the holder's identities
is a recipient of the file; the error names the file and its recipients. sops
checks the file's MAC on every decryption, so a file changed after it was
encrypted is refused as a whole: no value of it is used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appflow import settings
from appflow.errors import DecryptionError, Where
from appflow.model.limits import document_problem
from appflow.model.objects import Manifest
from appflow.model.sops import (
    SIZE_LIMIT,
    Decrypted,
    SopsFormat,
    dotenv_metadata,
    dotenv_tokens,
    format_of,
    is_sops_metadata,
    looks_encrypted,
    recipients,
    secret_values,
    strip_metadata,
    token_values,
)
from appflow.secrets import sops
from appflow.secrets.age import Identity

_TAIL = 64 << 10
"""Of a file too large to decrypt, the bytes read to tell whether it is encrypted
(sops writes its metadata at the end)."""


class _Loader(yaml.SafeLoader):
    """YAML as Kubernetes tools read it: timestamps stay strings (as render.documents does)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, kw_only=True)
class SopsFile:
    """An encrypted file as found: its place, format, ciphertext and recipients."""

    path: str
    """Relative to the folder searched, with '/' separators."""
    format: SopsFormat
    content: bytes
    recipients: tuple[str, ...]
    parsed: tuple[Any, ...]
    """The ciphertext documents (YAML/JSON); for dotenv and binary, the text."""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Scan:
    """What a folder holds: its SOPS files, and the other files that were looked at."""

    encrypted: tuple[SopsFile, ...]
    plain: tuple[str, ...]


def scan_folder(root: Path) -> Scan:
    """Every file under ROOT (dot-files and dot-folders left out), sorted by path."""
    encrypted: list[SopsFile] = []
    plain: list[str] = []
    for path in folder_files(root):
        rel = path.relative_to(root).as_posix()
        found = read_sops_file(path, rel)
        if found is None:
            plain.append(rel)
        else:
            encrypted.append(found)
    return Scan(encrypted=tuple(encrypted), plain=tuple(plain))


def folder_files(folder: Path) -> Iterator[Path]:
    """The files under FOLDER, sorted by path, dot-files and dot-folders left out (they are not
    the app's), symlinked folders not followed: what an app folder holds."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from folder_files(entry)
        elif entry.is_file():
            yield entry


def read_sops_file(path: Path, name: str) -> SopsFile | None:
    """The SOPS file at PATH (shown as NAME), or None when it is not SOPS-encrypted."""
    fmt = format_of(path.name)
    try:
        size = path.stat().st_size
        if size > SIZE_LIMIT:
            with path.open("rb") as fh:
                fh.seek(max(0, size - _TAIL))
                if looks_encrypted(fh.read(), fmt):
                    raise DecryptionError(
                        f"the encrypted file is larger than {SIZE_LIMIT >> 20} MiB",
                        where=Where(file=name),
                        hint="split it; appflow decrypts files in memory",
                    )
            return None
        content = path.read_bytes()
    except OSError as err:
        raise DecryptionError(f"cannot read: {err.strerror}", where=Where(file=name)) from err
    return parse_sops_content(content, name=name) if looks_encrypted(content, fmt) else None


def parse_sops_content(content: bytes, *, name: str) -> SopsFile:
    """CONTENT (an encrypted file called NAME) with its documents and recipients read."""
    fmt = format_of(name)
    where = Where(file=name)
    try:
        text = content.decode()
    except UnicodeDecodeError as err:
        raise DecryptionError("the encrypted file is not UTF-8 text", where=where) from err
    if fmt == "yaml":
        parsed = tuple(_yaml_documents(text, name=name))
        metas = [d.get("sops") for d in parsed if isinstance(d, dict)]
    elif fmt in ("json", "binary"):
        try:
            doc = _within_limits([json.loads(text)], name=name)[0]
        except RecursionError:
            raise _refused("it is nested too deeply", name) from None
        except json.JSONDecodeError as err:
            raise DecryptionError(
                f"malformed SOPS file: invalid JSON ({err.msg})",
                where=Where(file=name, line=err.lineno, column=err.colno),
            ) from None
        parsed = (doc,)
        metas = [doc.get("sops") if isinstance(doc, dict) else None]
    else:
        parsed = (text,)
        metas = [dotenv_metadata(text)]
    if not metas or not all(is_sops_metadata(m) for m in metas):
        raise DecryptionError(
            "malformed SOPS file: a document has no complete sops metadata (mac, lastmodified)",
            where=where,
            hint="re-encrypt the file with sops",
        )
    return SopsFile(
        path=name,
        format=fmt,
        content=content,
        recipients=recipients(metas[0]),
        parsed=parsed,
    )


def _yaml_documents(text: str, *, name: str) -> list[Any]:
    try:
        return _within_limits(
            [d for d in yaml.load_all(text, Loader=_Loader) if d is not None], name=name
        )
    except RecursionError:
        # The pure-Python composer recurses once per level of nesting.
        raise _refused(
            f"it is nested more than {settings.limits().max_yaml_depth} levels deep", name
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise DecryptionError(
            f"malformed SOPS file: invalid YAML ({err.problem or err.context})",
            where=Where(
                file=name,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            ),
        ) from None
    except yaml.YAMLError:
        raise DecryptionError("malformed SOPS file: invalid YAML", where=Where(file=name)) from None


def _within_limits(documents: list[Any], *, name: str) -> list[Any]:
    """DOCUMENTS, unless one is beyond the operator's limits (nesting, YAML aliases)."""
    limits = settings.limits()
    for doc in documents:
        problem = document_problem(doc, limits)
        if problem is not None:
            raise _refused(problem, name)
    return documents


def _refused(problem: str, name: str) -> DecryptionError:
    return DecryptionError(
        f"the file is refused: {problem}",
        where=Where(file=name),
        hint="the limits are the operator's APPFLOW_MAX_YAML_DEPTH and APPFLOW_MAX_YAML_NODES",
    )


def usable(file: SopsFile, identities: Sequence[Identity]) -> list[Identity]:
    """The identities among IDENTITIES that FILE is encrypted for."""
    return [i for i in identities if i.recipient in file.recipients]


async def decrypt_file(file: SopsFile, *, identities: Sequence[Identity], holder: str) -> Decrypted:
    """FILE decrypted with whichever of IDENTITIES it is encrypted for.

    HOLDER names whose identities they are in errors (``cluster berlin-1``).
    """
    chosen = usable(file, identities)
    if not chosen:
        listed = ", ".join(file.recipients) or "no recipient"
        only_other = file.recipients and not any(r.startswith("age1") for r in file.recipients)
        raise DecryptionError(
            f"cannot decrypt: {holder} holds no age identity for this file, "
            f"which is encrypted for {listed}",
            where=Where(file=file.path),
            hint="appflow decrypts with age keys only; encrypt the file for an age recipient"
            if only_other
            else "add the key with `appflow secret key add NAME --cluster C --age-key-file F`, "
            "or re-encrypt the file for it with `appflow secret encrypt`",
        )
    plain = await sops.decrypt(
        file.content,
        file=file.path,
        fmt=file.format,
        identities=chosen,
        recipients=file.recipients,
        holder=holder,
    )
    return await asyncio.to_thread(_decrypted, file, plain)


def _decrypted(file: SopsFile, plain: bytes) -> Decrypted:
    text = plain.decode(errors="replace")
    if file.format == "yaml":
        documents = tuple(_yaml_documents(text, name=file.path))
    elif file.format == "json":
        try:
            documents = tuple(_within_limits([json.loads(text)], name=file.path))
        except RecursionError:
            raise _refused("it is nested too deeply", file.path) from None
    else:
        documents = (text,)
    tokens: dict[str, Any] = {}
    hidden: list[Any] = []
    if file.format == "dotenv":
        tokens = dotenv_tokens(str(file.parsed[0]), text)
        hidden = [*tokens.values(), text]
    elif file.format == "binary":
        envelope = file.parsed[0]
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if isinstance(data, str):
            tokens = {data: text}
        hidden = [text]
    else:
        for cipher, decrypted in zip(file.parsed, documents, strict=False):
            tokens.update(token_values(cipher, decrypted))
            hidden += secret_values(cipher, decrypted)
    return Decrypted(
        file=file.path,
        format=file.format,
        recipients=file.recipients,
        documents=documents,
        tokens=tokens,
        secrets=tuple(hidden),
        ciphertext_text=file.content.decode(),
    )


async def decrypt_content(
    content: bytes, *, name: str, identities: Sequence[Identity], holder: str
) -> Decrypted:
    """Encrypted CONTENT (as read from a file called NAME) decrypted in memory."""
    return await decrypt_file(
        parse_sops_content(content, name=name), identities=identities, holder=holder
    )


async def decrypt_manifests(
    content: bytes, *, name: str, identities: Sequence[Identity], holder: str
) -> list[Manifest]:
    """The Kubernetes objects of an encrypted manifest file, decrypted, without sops metadata."""
    decrypted = await decrypt_content(content, name=name, identities=identities, holder=holder)
    objects: list[Manifest] = []
    for index, doc in enumerate(decrypted.documents):
        if not isinstance(doc, dict):
            raise DecryptionError(
                f"document {index + 1} is not a Kubernetes object", where=Where(file=name)
            )
        objects.append(strip_metadata(doc))
    return objects
