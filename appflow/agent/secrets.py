"""SOPS on the edge: the agent decrypts with its own age identity, which never leaves its
cluster (issue 15).

The hub renders plain YAML and kustomize apps from ciphertext and ships the render with the
app's SOPS files (``desiredState.secrets``, a bundle of ciphertext; ``model.content``). The agent
decrypts each file (sops checks its MAC), puts the values back into the objects with the push
engine's own ``reveal_objects``, and hands the stages a DesiredState whose redactor knows the
values: fingerprints hold keyed digests, and no message, log line or status quotes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appflow import redaction
from appflow.engine.secrets import reveal_objects, tokens_of
from appflow.errors import DecryptionError, Where
from appflow.model.content import read_secrets_bundle
from appflow.model.objects import Manifest
from appflow.model.redact import Redactor
from appflow.model.sops import leftover_tokens
from appflow.secrets.age import Identity
from appflow.secrets.decrypt import decrypt_content


@dataclass(frozen=True, kw_only=True)
class Revealed:
    objects: tuple[Manifest, ...]
    redactor: Redactor | None = None
    """Set when the objects hold decrypted values."""


async def reveal_on_edge(
    objects: Sequence[Manifest],
    *,
    bundle: bytes | None,
    identity: Identity | None,
    cluster: str,
    app: str,
) -> Revealed:
    """OBJECTS with their encrypted values decrypted by this cluster's IDENTITY from BUNDLE."""
    if bundle is None:
        left = [t for o in objects for t in leftover_tokens(o)]
        if left:
            raise DecryptionError(
                "the desired state holds encrypted values but no SOPS files to decrypt them",
                where=Where(app=app, cluster=cluster),
                hint="the hub must ship the app's encrypted files with its render (secrets)",
            )
        return Revealed(objects=tuple(objects))
    if identity is None:
        raise DecryptionError(
            "this agent has no age identity to decrypt with",
            where=Where(app=app, cluster=cluster),
            hint="register the agent again: it creates its identity when it registers",
        )
    decrypted = []
    for name, data in read_secrets_bundle(bundle):
        try:
            decrypted.append(
                await decrypt_content(data, name=name, identities=[identity], holder=cluster)
            )
        except DecryptionError as err:
            raise err.located(app=app, cluster=cluster) from None
    values = [v for d in decrypted for v in d.secrets]
    # Before anything can quote them.
    redaction.remember(values)
    tokens, envelopes = tokens_of(decrypted)
    try:
        revealed = reveal_objects(objects, tokens=tokens, envelopes=envelopes)
    except DecryptionError as err:
        raise err.located(app=app, cluster=cluster) from None
    return Revealed(objects=revealed, redactor=redaction.redactor(values))
