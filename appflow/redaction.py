"""This process's redaction: the installation's digest key and every secret value seen so far.

Every way text leaves appflow goes through here: an ``AppflowError`` scrubs its
message when it is made (so events, sync history, deployment messages, CLI
errors and API answers carry no secret), the log handler of ``--debug`` and
``appflow serve`` scrubs each record, and diffs are redacted. The engine calls
:func:`remember` with every value it decrypts (and every value a chart's schema
marks sensitive) before it renders or applies anything with it, so that no
error those steps raise can quote one.

The values are kept in memory for the life of the process and never written
anywhere. The digest key (``redaction.key`` in the data folder, 32 random
bytes, mode 0600) makes the digests shown for hidden values useless for
guessing them; it is made on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from appflow import errors
from appflow.model.redact import Redactor
from appflow.paths import data_dir, key_file

KEY_FILE = "redaction.key"
_KEY_BYTES = 32

_lock = threading.Lock()
_keys: dict[Path, bytes] = {}
_seen = Redactor()


def key() -> bytes:
    """The installation's digest key, made on first use."""
    path = data_dir() / KEY_FILE
    with _lock:
        known = _keys.get(path)
        if known is None:
            known = key_file(path, size=_KEY_BYTES)
            _keys[path] = known
        return known


def redactor(values: Iterable[Any] = ()) -> Redactor:
    """A redactor with the installation's key, hiding VALUES (and Secret data)."""
    return Redactor(key=key()).with_values(values)


def remember(values: Iterable[Any]) -> None:
    """Scrub VALUES from every message this process makes from now on."""
    global _seen
    fresh = [v for v in values if v is not None]
    if not fresh:
        return
    if all(isinstance(v, str) and v in _seen.values for v in fresh):
        return  # the daemon decrypts the same files on every sync
    digest_key = key()
    with _lock:
        base = (
            _seen if _seen.key == digest_key else Redactor(key=digest_key).with_values(_seen.values)
        )
        _seen = base.with_values(fresh)


def scrub(text: str) -> str:
    """TEXT without any secret value this process has seen."""
    current = _seen
    return current.scrub(text) if current.values else text


# Values reach _seen only through this module: from its import on, errors scrub theirs.
errors.install_scrubber(scrub)
