"""Browser fixtures: one headless Chromium per module, and ``people`` to open a page per user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chatpage import CHROMIUM, CHROMIUM_ARGS, DESKTOP, TIMEOUT_MS, ChatPage, require_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module; each user gets their own context (own localStorage)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Remember each phase's report on the item, so fixtures can tell at teardown whether the test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def people(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., ChatPage]]:
    """Make ``ChatPage``s, each in a fresh browser context. On failure every page is screenshotted into
    test-artifacts/web/, and an uncaught JavaScript error in any page fails the test."""
    made: list[ChatPage] = []

    def make(name: str, viewport: dict[str, int] | None = None, setup: Callable[[Any], None] | None = None) -> ChatPage:
        context = browser.new_context(viewport=viewport or DESKTOP)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        if setup is not None:
            setup(page)
        person = ChatPage(page, name)
        made.append(person)
        return person

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    errors = []
    for person in made:
        if failed:
            try:
                person.screenshot(f"FAILED-{request.node.name}-{person.name}.png")
            except Exception:  # noqa: BLE001 - a broken page must not hide the real failure
                pass
        errors += [f"{person.name}: {e}" for e in person.errors]
        person.context.close()
    if errors and not failed:
        pytest.fail("JavaScript errors in the page:\n" + "\n".join(errors))
