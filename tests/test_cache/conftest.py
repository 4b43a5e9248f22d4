"""The cache tests run kiln through the real `executor` entry point (tests/e2e's `kiln` fixture)."""
from tests.e2e.conftest import kiln  # noqa: F401  (fixture)
