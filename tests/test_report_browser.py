"""The HTML report in a real headless browser (Debian's chromium + chromedriver via Selenium):
no console errors, no network requests, the filters change which rows are visible, and the
trace tree expands.

Without chromium, chromedriver or selenium these tests skip, except when ``CI`` is set: there
they fail, so CI can never go green without having run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (loaded once here: in-process sessions must not import it anew)
import pytest
from test_report_html import (
    PAIRED_MOVED,
    SUITE_OUTCOMES,
    compared,
    write_hidden_suite,
    write_suite,
)

if TYPE_CHECKING:
    from selenium.webdriver import Chrome
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing() -> str | None:
    """Why the browser cannot run here, or ``None`` when it can."""
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if absent:
        return f"{' and '.join(absent)} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def require_browser(problem: str | None, environ: Mapping[str, str]) -> None:
    """Skip for ``problem`` locally; fail in CI (``CI`` set), where the browser must exist."""
    if problem is None:
        return
    if environ.get("CI"):
        pytest.fail(f"the browser tests must run in CI, but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    require_browser(_missing(), os.environ)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(str(tmp_path_factory.getbasetemp() / "chromium-profile"), ignore_errors=True)


@pytest.fixture
def report(pytester: pytest.Pytester, capitals: list[dict[str, Any]]) -> Path:
    """The HTML report of a real session with every outcome (see `test_report_html.SUITE`)."""
    write_suite(pytester, capitals)
    pytester.runpytest("--llm-report=report.html").assert_outcomes(**SUITE_OUTCOMES)
    return pytester.path / "report.html"


def open_page(browser: Chrome, path: Path) -> None:
    browser.get(path.as_uri())
    browser.get_log("browser")  # start each page with an empty console


def severe(browser: Chrome) -> list[dict[str, Any]]:
    return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


def visible_rows(browser: Chrome) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, ".items .item")
    return [row.find_element(By.CSS_SELECTOR, ".nodeid").text for row in rows if row.is_displayed()]


def click(browser: Chrome, element: WebElement) -> None:
    """Click ``element`` once it is scrolled clear of the sticky filter bar."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def test_page_renders_without_console_errors_or_network(
    browser: Chrome, report: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, report)

    assert browser.title.startswith("failed · ")
    assert browser.find_element(By.ID, "run-status").text == "failed"
    assert severe(browser) == []
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });"
    )
    assert resources == []
    assert browser.execute_script("return document.querySelectorAll('img').length;") == 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3 + 4  # capitals, all
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_filters_change_the_visible_rows(browser: Chrome, report: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, report)
    count = browser.find_element(By.ID, "f-count")
    search = browser.find_element(By.ID, "f-text")
    outcome = Select(browser.find_element(By.ID, "f-outcome"))
    dataset = Select(browser.find_element(By.ID, "f-dataset"))
    assert len(visible_rows(browser)) == 8
    assert count.text == "8 of 8 items shown"

    search.send_keys("JAPAN")
    assert visible_rows(browser) == ["test_suite.py::test_capital[japan]"]
    assert count.text == "1 of 8 items shown"

    search.clear()
    search.send_keys("tone=friendly capital")  # every word must match
    assert len(visible_rows(browser)) == 3

    search.clear()
    search.send_keys(" ")
    outcome.select_by_value("failed")
    assert visible_rows(browser) == [
        "test_suite.py::test_capital[spain]",
        "test_suite.py::test_crashes",
    ]
    dataset.select_by_value("d:capitals")
    assert visible_rows(browser) == ["test_suite.py::test_capital[spain]"]
    outcome.select_by_value("")
    assert len(visible_rows(browser)) == 4
    dataset.select_by_value("none")
    assert len(visible_rows(browser)) == 4
    outcome.select_by_value("error")
    assert visible_rows(browser) == ["test_suite.py::test_setup_error"]
    assert count.text == "1 of 8 items shown"
    assert severe(browser) == []


def test_trace_tree_expands(browser: Chrome, report: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, report)
    item = browser.find_element(By.CSS_SELECTOR, '.item[data-search*="[france]"]')
    names = item.find_elements(By.CSS_SELECTOR, ".obs-name")
    assert [n.text for n in names if n.is_displayed()] == []

    click(browser, item.find_element(By.TAG_NAME, "summary"))

    shown = [n.text for n in names if n.is_displayed()]
    assert shown == ["test_capital[france]", "lookup", "retrieve-context", "llm.generate"]
    lookup = next(
        d for d in item.find_elements(By.CSS_SELECTOR, "details.obs") if "lookup" in d.text
    )
    body = lookup.find_element(By.CSS_SELECTOR, ".obs-body")
    assert not body.is_displayed()
    click(browser, lookup.find_element(By.TAG_NAME, "summary"))
    assert body.is_displayed()
    assert "What is the capital of France?" in body.text

    click(browser, item.find_element(By.TAG_NAME, "summary"))
    assert [n.text for n in names if n.is_displayed()] == []
    assert severe(browser) == []


def test_expand_all_opens_every_shown_item(browser: Chrome, report: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, report)
    Select(browser.find_element(By.ID, "f-outcome")).select_by_value("failed")

    click(browser, browser.find_element(By.ID, "f-expand"))

    opened = browser.execute_script(
        "return Array.from(document.querySelectorAll('details.item'))"
        ".filter(function (d) { return d.open; }).length;"
    )
    assert opened == 2
    crash = browser.find_element(By.CSS_SELECTOR, '.item[data-search*="test_crashes"]')
    error_span = crash.find_element(By.CSS_SELECTOR, "details.obs.err .obs-name")
    assert error_span.is_displayed()
    assert error_span.text in ("test_crashes", "explode")
    click(browser, browser.find_element(By.ID, "f-collapse"))
    assert not error_span.is_displayed()


def test_control_and_bidi_characters_show_as_escapes(
    browser: Chrome, pytester: pytest.Pytester
) -> None:
    # (before: the page read "expected Paris, output Paris" for a NUL item scored false, and
    # a right-to-left override reordered the text after it)
    from selenium.webdriver.common.by import By

    write_hidden_suite(pytester)
    pytester.runpytest("--llm-report=hidden.html").assert_outcomes(passed=2)
    open_page(browser, pytester.path / "hidden.html")

    item = browser.find_element(By.CSS_SELECTOR, '.item[data-search*="[nul]"]')
    click(browser, item.find_element(By.TAG_NAME, "summary"))
    facts = item.find_element(By.CSS_SELECTOR, ".item-body > dl.kv")
    shown = dict(
        zip(
            [dt.text for dt in facts.find_elements(By.TAG_NAME, "dt")],
            [dd.text for dd in facts.find_elements(By.TAG_NAME, "dd")],
            strict=True,
        )
    )
    assert shown["expected"] == "Par\\x00is"
    assert shown["output"] == "Paris"
    mark = facts.find_element(By.CSS_SELECTOR, "pre .esc")
    assert mark.is_displayed() and mark.text == "\\x00"
    assert "accuracy=false" in item.find_element(By.CSS_SELECTOR, ".chips").text
    bidi = browser.find_element(By.CSS_SELECTOR, '.item[data-search*="[bidi]"]')
    click(browser, bidi.find_element(By.TAG_NAME, "summary"))
    assert "Capital of Italy? \\u202eenoR\\u202c \\u2066x\\u2069" in bidi.text
    raw = browser.execute_script(  # what the browser holds, text and attributes alike
        "return /[\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\u061c"
        "\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufffd]/"
        ".test(document.documentElement.outerHTML + document.title);"
    )
    assert raw is False
    assert severe(browser) == []


LABELS_SUITE = """\
import pytest

VALUES = ["<script>x</script>", "a label far longer than the room for one"]
VALUES += [f"value number {i:02}" for i in range(20)]

@pytest.mark.parametrize("value", VALUES)
def test_label(value, scorer):
    scorer.score("kind", value)
"""
"""A categorical score with markup, a long value and more values than a chart has bars."""


def test_category_labels_fit_their_chart(
    browser: Chrome, pytester: pytest.Pytester, report: Path
) -> None:
    pytester.makepyfile(test_labels=LABELS_SUITE)
    pytester.runpytest("--llm-report=labels.html", "test_labels.py").assert_outcomes(passed=22)

    for page in (report, pytester.path / "labels.html"):  # the suite's hostile label, and these
        open_page(browser, page)
        drawn = browser.execute_script(  # every text right-aligned in a chart: labels, ticks
            "return Array.from(document.querySelectorAll('svg.chart text[text-anchor=end]'))"
            ".map(function (t) { var box = t.getBBox();"
            " return [t.textContent, box.x, box.x + box.width,"
            " t.ownerSVGElement.viewBox.baseVal.width]; });"
        )
        assert drawn
        for text, left, right, width in drawn:
            assert left >= 0, f"{text!r} starts {-left:.0f} px left of its chart"
            assert right <= width, f"{text!r} ends {right - width:.0f} px right of its chart"
        labels = browser.execute_script(
            "return Array.from(document.querySelectorAll('svg.chart text.cat')).map("
            "function (t) { return [t.textContent,"
            " t.parentNode.querySelector('title').textContent]; });"
        )
        for text, full in labels:
            assert text == full or (text.endswith("…") and full.startswith(text[:-1])), text
    shown = dict(labels)
    assert shown["<script>x</script>"] == "<script>x</script>"
    assert shown["a label far longer …"] == "a label far longer than the room for one"
    assert shown["other (11 values)"] == "other (11 values)"
    assert severe(browser) == []


def test_a_wide_confusion_matrix_scrolls_in_its_own_box(
    browser: Chrome, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        test_cities="import pytest\n\n@pytest.mark.parametrize('i', range(40))\n"
        "def test_l(scorer, i):\n"
        "    scorer.label(f'city-{(i * 7) % 40:02d}', f'city-{i:02d}', name='city')\n"
    )
    pytester.runpytest("--llm-report=cities.html").assert_outcomes(passed=40)

    open_page(browser, pytester.path / "cities.html")

    page = browser.execute_script(
        "var d = document.documentElement; return [d.scrollWidth, d.clientWidth];"
    )
    box = browser.execute_script(
        "var b = document.querySelector('table.confusion').parentNode;"
        " return [b.className, b.scrollWidth, b.clientWidth];"
    )
    # (before: the table widened the whole page, 2,253 px in a 1,265 px window)
    assert page[0] <= page[1], f"the page is {page[0]} px wide in a {page[1]} px window"
    assert box[0] == "scroll" and box[1] > box[2]  # the matrix scrolls in its box instead
    assert severe(browser) == []


def test_a_comparison_draws_the_change_its_interval_is_of(browser: Chrome, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "compared.html"
    page.write_text(compared(PAIRED_MOVED), encoding="utf-8")

    open_page(browser, page)

    section = browser.find_element(By.ID, "comparison")
    (mark,) = section.find_elements(By.CSS_SELECTOR, "svg.interval")
    point = mark.find_element(By.CSS_SELECTOR, "circle.point").rect
    ends = [line.rect for line in mark.find_elements(By.CSS_SELECTOR, "line.ci")]
    centre = point["x"] + point["width"] / 2
    # (before: the point was the aggregate's delta, -0.193, drawn left of -0.120 ... -0.024)
    assert min(r["x"] for r in ends) < centre < max(r["x"] + r["width"] for r in ends)
    assert "-0.193 (paired -0.072)" in section.text
    note = section.find_element(By.XPATH, ".//p[em='paired']")
    assert note.is_displayed() and "which the 95% CI, p and verdict are of" in note.text
    assert severe(browser) == []


def test_missing_browser_skips_locally_but_fails_in_ci() -> None:
    problem = "/usr/bin/chromium not installed"

    with pytest.raises(pytest.skip.Exception, match=r"^/usr/bin/chromium not installed$"):
        require_browser(problem, {})
    with pytest.raises(pytest.fail.Exception, match=r"must run in CI, but /usr/bin/chromium"):
        require_browser(problem, {"CI": "true"})
    require_browser(None, {"CI": "true"})
