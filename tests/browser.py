"""Debian's Chromium driven by Playwright, shared by the browser tests (the server's page, a
translated real page, the course's site). Playwright's own browser download cannot work offline,
so `make test` installs Debian's package when it is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests may run as root (CI does)
    "--disable-gpu",
    # This machine's network is closed: without these, Chromium's own connections are refused.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def launched_chromium() -> Iterator[Any]:
    """A headless Chromium for a module's tests (the body of a module-scoped fixture)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"the browser test needs Chromium at {CHROMIUM}; `make test` installs Debian's "
            "package (apt-get install chromium) when it is missing",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()
