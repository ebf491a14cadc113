"""Signing in to the console: a page opened without a key goes to the sign-in form, a wrong key is refused there,
the local admin's key signs in and lands on the page asked for; the users page makes a key shown once, and signing
out ends the session."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import ACTION_TIMEOUT_MS, VIEWPORT, ConsoleServer
from tests.fixtures.auth import local_key


def test_sign_in_make_a_key_and_sign_out(browser: Any, console_server: ConsoleServer) -> None:
    context = browser.new_context(base_url=console_server.url, viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/console/datasets")
        assert "/console/login" in page.url
        page.fill("#login-key", "tf-wrong")
        page.click("button[type=submit]")
        assert page.locator("[data-login-error]").is_visible()
        page.fill("#login-key", local_key(console_server.settings))
        page.click("button[type=submit]")
        page.wait_for_url("**/console/datasets")

        page.goto("/console/users")
        assert "admin" in page.locator("[data-me]").inner_text()
        page.fill("#key-name", "laptop")
        page.click("[data-action=create-key]")
        new_key = page.locator(".new-key").inner_text()
        assert new_key.startswith("tf-")
        page.goto("/console/users")  # shown once: not on the page any more, only its name in the list
        assert page.locator(".new-key").count() == 0
        assert "laptop" in page.locator("[data-keys]").inner_text()

        page.click("[data-action=logout]")
        page.goto("/console/tasks")
        assert "/console/login" in page.url
    finally:
        context.close()
