"""Screenshot a generated HTML report with headless Debian Chromium, to look at it as a person would."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str:
    """Path of the chromium binary; raises FileNotFoundError with the install command when missing."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("chromium not found: apt-get update && apt-get install -y chromium")


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 4000, timeout: float = 120) -> Path:
    """Render `html` to `png` at `width` x `height`; raises RuntimeError if Chromium writes no image."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png.resolve()}",
                   f"--window-size={width},{height}", html.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("html", type=Path, help="the report.html to render")
    parser.add_argument("--out", type=Path, help="PNG path (default: next to the HTML, report.png)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args(argv)
    png = screenshot(args.html, args.out or args.html.with_suffix(".png"), args.width, args.height)
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
