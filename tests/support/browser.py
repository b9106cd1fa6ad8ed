"""Headless Chromium for the dashboard's browser tests, driven by Playwright for Python.

Debian's ``chromium`` (installed by ``make test`` with apt-get, like redis-server) is launched
by its executable path: Playwright's own browser downloads are never used. The flags are those
known to work on this kind of machine (no sandbox as root, no GPU, no background network
traffic); Playwright gives every launch a new empty profile directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch_chromium"]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """``REDKEEP_TEST_CHROMIUM``, else Debian's chromium on PATH; None when there is none."""
    configured = os.environ.get("REDKEEP_TEST_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``); skips the test when no browser can be
    had here, saying why."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: run `make install` (it is in the dev extra)")
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium on this machine: `make test` installs Debian's chromium with apt-get "
            "(or set REDKEEP_TEST_CHROMIUM to a Chromium executable)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
