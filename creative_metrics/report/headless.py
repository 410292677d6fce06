"""Rendering a report in headless Chromium: its DOM after the page ran, and a screenshot (how tests check that
a self-contained HTML report really renders)."""

from __future__ import annotations

import shutil
import subprocess
from typing import List, Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> Optional[str]:
    """The path of a Chromium on PATH, or ``None``."""
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


def _flags(profile_dir: str) -> List[str]:
    browser = chromium()
    if browser is None:
        raise FileNotFoundError(f"no headless browser on PATH (looked for {', '.join(BROWSERS)})")
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile_dir}"]


def dump_dom(url: str, profile_dir: str, timeout: float = 180.0) -> str:
    """The page's DOM once loaded (``--dump-dom``)."""
    return subprocess.run(_flags(profile_dir) + ["--dump-dom", url], capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def screenshot(url: str, png_path: str, profile_dir: str, width: int = 1280, height: int = 2400,
               timeout: float = 180.0) -> str:
    """Saves a ``width`` x ``height`` screenshot of the page to ``png_path``; returns it."""
    subprocess.run(_flags(profile_dir) + [f"--screenshot={png_path}", f"--window-size={width},{height}", url],
                   capture_output=True, timeout=timeout, check=True)
    return png_path
