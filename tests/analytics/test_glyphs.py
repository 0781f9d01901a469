"""Every character the report shows has a glyph in an installed font, so no browser draws a missing-glyph box.

Chromium on Linux finds fonts through fontconfig and falls back, character by character, to any
installed font that has the glyph; a character no installed font covers is drawn as a box. So the
check is: each character of the page's visible text is in the character map of some font fontconfig
lists (`make setup` installs fonts-dejavu-core when it is missing). Figures are PNGs drawn by
matplotlib with its own DejaVu Sans; it warns about glyphs that font lacks, which fail the test too.
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import unicodedata
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fontTools.ttLib import TTCollection, TTFont

from analytics.loaders import load_inputs
from analytics.report import ReportOptions, build_report, render_html

from .conftest import OPERATION_INPUTS

pytestmark = pytest.mark.stack  # asks fontconfig (fc-list) which fonts a browser would use

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts",
             Path.home() / ".fonts")
FONT_SUFFIXES = {".ttf", ".otf", ".ttc", ".otc"}


class VisibleText(HTMLParser):
    """Text a browser draws: character data outside <style>/<script>/<head> metadata, plus alt and title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._hidden += 1
        self.parts.extend(value for name, value in attrs if name in ("alt", "title") and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_characters(html: str) -> set[str]:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    # Whitespace and format characters (variation selectors, joiners) are not drawn as glyphs.
    return {ch for ch in "".join(parser.parts) if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Mn")
            and not 0xFE00 <= ord(ch) <= 0xFE0F}


def font_files() -> list[Path]:
    if shutil.which("fc-list"):
        listed = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, check=True)
        return sorted({Path(line) for line in listed.stdout.splitlines() if line.strip()})
    return sorted(p for d in FONT_DIRS if d.is_dir() for p in d.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)


@functools.lru_cache(maxsize=1)
def covered_code_points() -> frozenset[int]:
    points: set[int] = set()
    for path in font_files():
        if path.suffix.lower() not in FONT_SUFFIXES:
            continue
        fonts = TTCollection(str(path), lazy=True).fonts if path.suffix.lower() in (".ttc", ".otc") else [
            TTFont(str(path), lazy=True)]
        for font in fonts:
            points.update(font.getBestCmap() or {})
    return frozenset(points)


def missing_glyphs(html: str) -> list[str]:
    covered = covered_code_points()
    return sorted(f"U+{ord(ch):04X} {unicodedata.name(ch, '?')}" for ch in visible_characters(html)
                  if ord(ch) not in covered)


def test_the_check_sees_what_a_browser_would_draw():
    html = '<html><head><style>p::before { content: "📅" }</style></head><body><p title="x📅">a&amp;b ✔️</p></body></html>'
    assert visible_characters(html) == {"x", "📅", "a", "&", "b", "✔"}
    assert covered_code_points(), "no fonts installed: run `make setup` (installs fonts-dejavu-core)"
    assert missing_glyphs("<p>📅 \U000E0001</p>") != []  # an emoji and a tag character no text font has


@pytest.mark.parametrize("room", ["R1", "R3"])  # R1 only succeeded, R3 only failed
def test_the_report_has_a_glyph_for_every_character(call_inputs, room):
    data = load_inputs([OPERATION_INPUTS["diagnostic"], call_inputs["eventgrid"], call_inputs["callsummary"],
                        call_inputs["roster"]], progress=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*missing from font")  # matplotlib's missing-glyph warning
        report = build_report(data, ReportOptions(room_id=room))
    html = render_html(report)
    assert "Room drill-down" in html and f"Operations of room {room}" in html
    assert missing_glyphs(html) == []
