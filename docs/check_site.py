"""Check a built site offline: ``python docs/check_site.py docs/_build/html docs/_build/warnings.txt``.

Fails (exit 1) on

- a Sphinx warning about a reference: a link, toctree entry, label, include or image that does not resolve,
  or a page that no toctree reaches;
- a relative ``href`` or ``src`` in the HTML whose file does not exist, or whose ``#anchor`` is not an id
  of the target page.

Every other warning (docstring markup, for instance) is listed and counted, not fatal.
"""
from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

REFERENCE_WARNINGS = re.compile(
    r"\[(myst\.xref_missing|myst\.include|ref\.[\w.]+|toc\.[\w.]+|image\.not_readable|download\.not_readable)\]"
    r"|undefined label|unknown document|nonexisting document|isn't included in any toctree"
    r"|image file not readable|Problems with \"include\" directive|download file not readable"
)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._open_link: int | None = None

    def handle_data(self, data: str) -> None:
        if data.strip():
            self._open_link = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "span" and "problematic" in (values.get("class") or "").split() and self._open_link is not None:
            # docutils links the text of a markup error to its report; the error is already a Sphinx warning
            del self.links[self._open_link]
        self._open_link = None
        if tag == "a" and values.get("href"):
            self._open_link = len(self.links)
        for key in ("id", "name"):
            if values.get(key) and (key == "id" or tag == "a"):
                self.ids.add(values[key])
        for key in ("href", "src"):
            if values.get(key) and not (tag == "link" and key == "href" and "preconnect" in (values.get("rel") or "")):
                self.links.append(values[key])


def _parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(site: Path) -> list[str]:
    """Relative links and anchors in every page of ``site`` that do not resolve, as 'page: link (why)'."""
    cache: dict[Path, _Page] = {}
    problems = []
    for html in sorted(site.rglob("*.html")):
        page = _parse(html, cache)
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("data:", "mailto:", "javascript:")):
                continue
            where = html.relative_to(site).as_posix()
            if parts.path:
                target = (html.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    problems.append(f"{where}: {link} (no such file)")
                    continue
                if not target.is_relative_to(site.resolve()):
                    problems.append(f"{where}: {link} (outside the site)")
                    continue
            else:
                target = html
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in _parse(target, cache).ids:
                problems.append(f"{where}: {link} (no id '{fragment}' in {target.name})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0])
        return 2
    site, warnings_file = Path(argv[0]), Path(argv[1])
    if not (site / "index.html").is_file():
        print(f"check_site: {site}/index.html does not exist; build the site first (make docs)")
        return 1
    warnings = [line for line in warnings_file.read_text(encoding="utf-8").splitlines() if "WARNING" in line or "ERROR" in line]
    fatal = [line for line in warnings if REFERENCE_WARNINGS.search(line)]
    others = [line for line in warnings if line not in fatal]
    links = broken_links(site)
    for line in others:
        print(f"  warning: {line}")
    print(f"check_site: {len(warnings)} Sphinx warnings, {len(fatal)} about references; {len(links)} broken links in the HTML")
    for line in fatal:
        print(f"  broken reference: {line}")
    for line in links:
        print(f"  broken link: {line}")
    return 1 if fatal or links else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
