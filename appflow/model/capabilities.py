"""What a target cluster serves (its version and API versions), as discovery reports it.

Helm renders against it (--kube-version, --api-versions) and the render cache
keys on its digest, so the kube adapter produces it and render consumes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What the target cluster serves, as discovery reported it (helm's .Capabilities)."""

    kube_version: str
    api_versions: tuple[str, ...] = ()

    def digest(self) -> str:
        # Order of discovery results carries no meaning, so it must not change the digest.
        text = json.dumps(
            [self.kube_version, sorted(set(self.api_versions))], separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()
