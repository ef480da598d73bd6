"""Daemon tests reuse the engine tests' `fleet` fixture."""

from tests.integration.engine.conftest import fleet  # noqa: F401
