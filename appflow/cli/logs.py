"""Logging for the CLI and `appflow serve`: one stderr handler that scrubs every record.

`appflow --debug COMMAND` logs everything appflow and its libraries log
(helm's command lines, git's fetches, the daemon's decisions); without it only
warnings and errors. Whatever the level, each record's text passes through
``appflow.redaction.scrub`` first, so no value the process decrypted, and no
value a chart marks sensitive, reaches a log.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ScrubFilter(logging.Filter):
    """Replaces each record's message (and its traceback) by the scrubbed text."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Imported at the first record, not at start-up: only this module puts values
        # in what scrub() removes, so before it is imported there is nothing to remove.
        from appflow import redaction

        message = record.getMessage()
        record.msg, record.args = redaction.scrub(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redaction.scrub(text)
        return True


def configure_logging(*, debug: bool) -> None:
    """Send log records of DEBUG (or WARNING) and above to stderr, scrubbed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "appflow", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.appflow = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(ScrubFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
