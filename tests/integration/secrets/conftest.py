"""Secrets tests reuse the engine tests' `fleet` and `space` fixtures."""

from tests.integration.engine.conftest import fleet, space  # noqa: F401
