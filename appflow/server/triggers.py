"""What the HTTP server asks of the daemon: start work, and say how busy it is.

The server (webhooks, API) depends on this Protocol rather than on the daemon
class, so it can be mounted in `appflow serve` and tested on its own.
"""

from __future__ import annotations

from typing import Protocol

from appflow.model.records import SyncTrigger


class Triggers(Protocol):
    """The daemon's entry points for the HTTP server."""

    def trigger_repo(self, repo: str, *, trigger: SyncTrigger, commit: str | None = None) -> None:
        """Fetch repository REPO now (in the background) and sync the apps whose paths changed."""

    def trigger_app(
        self, app: str, *, trigger: SyncTrigger, cluster: str | None = None, actor: str = ""
    ) -> None:
        """Sync app APP (on one CLUSTER, or on all its targets) in the background; ACTOR
        (an API token's name) is recorded as who asked."""

    def queue_depth(self) -> int:
        """Work items waiting or running."""

    def ready(self) -> bool:
        """True once the daemon has loaded its state and its workers run."""
