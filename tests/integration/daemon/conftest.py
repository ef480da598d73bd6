"""Daemon tests reuse the engine tests' `fleet` and `space` fixtures, and the git origin
and HTTP server of the engine's git source tests."""

from tests.integration.engine.conftest import fleet, space  # noqa: F401
from tests.integration.engine.test_git_source import origin, server  # noqa: F401
