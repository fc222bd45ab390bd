"""A headless Chromium for page tests: Playwright driving the distribution's browser.

Playwright's own browser download is not used: ``make test`` installs Debian's ``chromium``
package (``make browser``) and the tests launch it through Playwright with
``executable_path``. Where no browser is installed, page tests are skipped on a developer's
machine and fail under ``CI=true``, so that a CI run never passes with its browser tests unrun.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Flags for a headless browser on a machine without network access or a display.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync")


def chromium_path() -> str | None:
    """The browser executable: ``ALERTPROD_CHROMIUM``, else Debian's ``chromium`` on the PATH."""
    explicit = os.environ.get("ALERTPROD_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_browser() -> Iterator[object]:
    """A launched Playwright ``Browser`` (skip, or fail under CI, when none can start)."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - dev dependency
        path = None
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Chromium for the page tests: `make browser` installs it")
        pytest.skip("no Chromium installed (`make browser` installs it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
