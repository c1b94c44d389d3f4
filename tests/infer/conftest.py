from tests.backends.conftest import lively, make_lively  # noqa: F401  (shared fixtures)
