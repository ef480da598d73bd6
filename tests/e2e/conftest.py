"""End-to-end tests reuse the engine tests' fixtures (a fresh home with the sandbox registered)."""

from tests.integration.engine.conftest import fleet, space  # noqa: F401
