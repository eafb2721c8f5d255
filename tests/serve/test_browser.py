"""The web chat at / in headless Chromium: type a message, see a recommendation, emotions and the explanation."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_chat_shows_recommendation(serve_url, browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{serve_url}/")
    page.uncheck("#generate")  # recommendation only keeps this test fast; generation is covered over HTTP
    page.fill("#message", "I loved Titanic and romantic movies, what should I watch?")
    page.click("#send")
    page.wait_for_selector("#chat li.recommender:not(.pending)", timeout=60_000)
    movies = page.locator("#movies li.movie")
    assert movies.count() == 5
    first = page.locator("#movies li.movie .name").first.inner_text()
    reply = page.locator("#chat li.recommender").last.inner_text()
    assert first in reply  # the reply names the top movie
    assert page.locator("#emotions li.emotion").count() == 5
    assert page.locator("#error").is_hidden()
    # A second turn in the same session keeps the conversation.
    page.check("#generate")
    page.fill("#message", "Thanks! Something funnier?")
    page.click("#send")
    page.wait_for_function(
        "document.querySelectorAll('#chat li.recommender:not(.pending)').length == 2", timeout=120_000
    )
    assert page.locator("#chat li.user").count() == 2
    assert not errors, errors
    page.close()
