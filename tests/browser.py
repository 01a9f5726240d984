"""Headless Chromium for the tests (Playwright driving the system's Chromium, Debian's ``chromium``
package; nothing is downloaded), and the command that takes the README's screenshot::

    python tests/browser.py results/leaderboard.html docs/leaderboard.png
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: where Chromium may be: $SSFBENCH_CHROMIUM, then these names on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None when there is none."""
    given = os.environ.get("SSFBENCH_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def unavailable() -> str | None:
    """Why no browser test can run here (None when it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return ("no Chromium (apt-get install chromium, as .ci/run does; or set SSFBENCH_CHROMIUM to its path); "
                "the browser test needs one")
    return None


@contextmanager
def page(width: int = 1600, height: int = 900) -> Iterator[tuple[Any, list[str]]]:
    """A fresh Chromium page without network access and the list its console errors and uncaught
    exceptions are appended to."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-proxy-server"])
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
            tab = context.new_page()
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab, errors
        finally:
            browser.close()


def screenshot(html: Path, png: Path) -> Path:
    """Open ``html`` and save a full-page screenshot at ``png``."""
    with page() as (tab, errors):
        tab.goto(Path(html).resolve().as_uri())
        tab.screenshot(path=str(png), full_page=True)
    if errors:
        raise RuntimeError(f"{html}: console errors: {errors}")
    return png


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/browser.py PAGE.html SCREENSHOT.png")
    print(f"wrote {screenshot(Path(sys.argv[1]), Path(sys.argv[2]))}")
