"""The console in a real browser: `/` lands on the tasks page, every section of the header opens without a server
or JavaScript error, and the language switch turns every header string into Chinese and back."""

from __future__ import annotations

import re

import pytest

from tuneforge.web.i18n import catalog
from tuneforge.web.rendering import NAV

pytestmark = pytest.mark.browser
CJK = re.compile(r"[\u4e00-\u9fff]")


def nav_texts(page) -> list[str]:
    return [text.strip() for text in page.locator("nav a[data-nav]").all_inner_texts()]


def expected_nav(lang: str) -> list[str]:
    return [catalog(lang)[f"nav.{section}"] for section, _ in NAV]


def test_root_lands_on_tasks_and_every_section_opens(console_server, page, page_errors, shoot):
    response = page.goto("/")
    assert response is not None and response.ok
    assert page.url == f"{console_server.url}/console/tasks"
    assert page.locator("nav a[data-nav='tasks']").get_attribute("aria-current") == "page"
    shoot("tasks")

    for section, href in NAV:
        # Through the header's link, as a user goes, and the document's own HTTP status, not only what it shows.
        with page.expect_response(lambda r, href=href: r.url == f"{console_server.url}{href}") as answer:
            page.locator(f"nav a[data-nav='{section}']").click()
        page.wait_for_load_state("networkidle")
        assert answer.value.status == 200, f"{href} answered HTTP {answer.value.status}"
        assert page.url == f"{console_server.url}{href}"
        assert page.locator("nav a[data-nav].active").inner_text().strip() == catalog("en")[f"nav.{section}"]
        assert page.locator("h1").first.is_visible(), f"{href} shows no heading"
        shoot(section)
    assert not page_errors, "\n".join(page_errors)


def test_language_switch_to_chinese_and_back(console_server, page, page_errors, shoot):
    page.goto("/console/datasets")
    assert nav_texts(page) == expected_nav("en")
    assert page.locator("html").get_attribute("lang") == "en"

    page.locator(".lang-switch a[data-lang='zh']").click()
    page.wait_for_load_state("networkidle")
    # The switch goes back to the page the user was on, now in Chinese.
    assert page.url == f"{console_server.url}/console/datasets"
    assert nav_texts(page) == expected_nav("zh")
    assert all(CJK.search(text) for text in nav_texts(page))
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    shoot("chinese")

    # The choice is remembered: another page opened afterwards is Chinese too.
    page.locator("nav a[data-nav='tasks']").click()
    page.wait_for_load_state("networkidle")
    assert nav_texts(page) == expected_nav("zh")

    page.locator(".lang-switch a[data-lang='en']").click()
    page.wait_for_load_state("networkidle")
    assert page.url == f"{console_server.url}/console/tasks"
    assert nav_texts(page) == expected_nav("en")
    assert not any(CJK.search(text) for text in nav_texts(page))
    shoot("english-again")
    assert not page_errors, "\n".join(page_errors)


@pytest.mark.parametrize("locale", ["zh-CN"])
def test_a_chinese_browser_gets_chinese_by_default(page, page_errors, locale):
    page.goto("/")
    assert nav_texts(page) == expected_nav("zh")
    assert not page_errors, "\n".join(page_errors)
