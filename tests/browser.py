"""A real browser for the viewer's tests: Debian's headless Chromium, driven by Playwright.

Browsers cannot be downloaded here, so ``playwright install`` is never used: Playwright
drives the system's Chromium (``apt-get install chromium``). Without one, the browser tests
are skipped, unless ``ROARK_REQUIRE_BROWSER`` is set (CI sets it), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    """The system Chromium's path, or None."""
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def why_no_browser() -> str | None:
    """Why the browser tests cannot run here (None: they can), or raise in CI."""
    chromium = find_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = 'Playwright is not installed (pip install -e ".[dev]")'
    else:
        missing = None if chromium else "no Chromium found (apt-get install chromium)"
    if missing and os.environ.get("ROARK_REQUIRE_BROWSER"):
        raise RuntimeError(f"ROARK_REQUIRE_BROWSER is set but {missing}")
    return missing


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """A headless Chromium (Playwright's ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
