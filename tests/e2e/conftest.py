"""Fixtures of the end-to-end tests: the browser tests' (see explorer_pages.py)."""
from tests.e2e.explorer_pages import browser, open_page  # noqa: F401 (pytest fixtures)
