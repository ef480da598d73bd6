"""Settings an operator gives appflow through its environment, read once per process.

Only what every command and the daemon share lives here: the limits on what a
repository may make appflow read and render (``APPFLOW_MAX_FILE_BYTES`` and the
others of ``appflow.model.limits.Limits``).
"""

from __future__ import annotations

import os
from functools import cache

from appflow.model.limits import Limits


@cache
def limits() -> Limits:
    """The limits of this process: the defaults, changed by ``APPFLOW_MAX_...`` variables."""
    return Limits.from_settings(os.environ)
