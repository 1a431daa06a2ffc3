"""The built site (``make docs``) in Chromium: every page reachable from the front page loads without a 404
or a console error, every image is drawn, and every notebook page shows at least one figure.

One crawl visits all pages (breadth first from index.html, following the links within the site) and
records what each page showed; the tests below read that record.
"""
from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin

import pytest

from ui_support import REPO, severe_messages

NOTEBOOKS = sorted(path.stem for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LOAD_TIMEOUT = 60

# After the page's load event: wait until its images are decoded.
SETTLE = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images).map(img => img.complete ? Promise.resolve() : img.decode().catch(() => {}));
Promise.all(images).then(() => done(true));
"""

PAGE_FACTS = """
const article = document.querySelector('article') || document.body;
return {
  images: Array.from(document.images).map(img => ({src: img.getAttribute('src').slice(0, 120), width: img.naturalWidth,
                                                   inArticle: article.contains(img)})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  assets: Array.from(document.querySelectorAll('link[href], script[src]')).map(e => e.href || e.src),
};
"""


@dataclass
class Page:
    url: str
    images: list[dict] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@dataclass
class Crawl:
    pages: dict[str, Page] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def crawl(browser, site, screenshots) -> Crawl:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    result = Crawl()
    checked: dict[str, int] = {}
    queue = deque([urljoin(site.url, "index.html")])
    seen = set(queue)
    severe_messages(browser)
    while queue:
        url = queue.popleft()
        browser.get(url)
        WebDriverWait(browser, LOAD_TIMEOUT).until(lambda driver: driver.execute_script("return document.readyState") == "complete")
        browser.execute_async_script(SETTLE)
        facts = browser.execute_script(PAGE_FACTS)
        page = Page(url, facts["images"], severe_messages(browser))
        result.pages[url] = page
        name = url[len(site.url):].removesuffix(".html").replace("/", "-")
        if name in {"index", *(f"notebooks-{stem}" for stem in NOTEBOOKS)}:
            browser.save_screenshot(str(screenshots / f"site-{name}.png"))
            figures = browser.find_elements(By.CSS_SELECTOR, "article .cell_output img")
            if figures:
                browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", figures[0])
                browser.save_screenshot(str(screenshots / f"site-{name}-first-figure.png"))
        for link in facts["links"] + facts["assets"]:
            target, _ = urldefrag(link)
            if not target.startswith(site.url):
                continue
            if target not in checked:
                checked[target] = _status(target)
                if checked[target] != 200:
                    result.broken.append(f"{target} (HTTP {checked[target]}), linked from {url}")
            if checked[target] == 200 and target.endswith(".html") and target not in seen:
                seen.add(target)
                queue.append(target)
    return result


def test_the_crawl_reaches_every_notebook_page(crawl, site):
    visited = {url[len(site.url):] for url in crawl.pages}
    missing = [stem for stem in NOTEBOOKS if f"notebooks/{stem}.html" not in visited]
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    assert not missing, f"notebook pages not reachable from index.html: {missing}"
    for page in ("notebooks/README.html", "data/README.html", "errors.html", "results.html", "api.html"):
        assert page in visited, f"{page} is not reachable from index.html"


def test_internal_links_resolve(crawl, site):
    assert not crawl.broken, "links within the site that do not load:\n" + "\n".join(crawl.broken)
    assert not site.not_found, "requests the server answered with 404:\n" + "\n".join(sorted(set(site.not_found)))


def test_no_console_errors(crawl):
    errors = [f"{url}: {message}" for url, page in crawl.pages.items() for message in page.console_errors]
    assert not errors, "SEVERE entries in the browser console:\n" + "\n".join(errors)


def test_every_image_is_drawn(crawl):
    blank = [f"{url}: {image['src']}" for url, page in crawl.pages.items() for image in page.images if image["width"] == 0]
    assert not blank, "images with naturalWidth 0 (missing or undecodable):\n" + "\n".join(blank)


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_page_shows_figures(crawl, site, stem):
    page = crawl.pages.get(urljoin(site.url, f"notebooks/{stem}.html"))
    assert page is not None, f"notebooks/{stem}.html was not visited"
    figures = [image for image in page.images if image["inArticle"]]
    assert figures, f"notebooks/{stem}.html shows no figure: its executed cells produced no image output"
    assert all(image["width"] > 0 for image in figures)


def test_error_table_is_in_the_navigation(crawl, site, browser):
    from selenium.webdriver.common.by import By

    browser.get(urljoin(site.url, "index.html"))
    navigation = [link.get_attribute("href") for link in browser.find_elements(By.CSS_SELECTOR, ".sidebar-tree a")]
    assert urljoin(site.url, "errors.html") in navigation, f"errors.html is not in the sidebar: {navigation}"
    browser.get(urljoin(site.url, "errors.html"))
    rows = browser.find_elements(By.CSS_SELECTOR, "article table tbody tr")
    assert len(rows) >= 5, f"errors.html holds {len(rows)} table rows, expected the README's error table"
    assert re.search(r"common errors", browser.title, re.IGNORECASE), browser.title
