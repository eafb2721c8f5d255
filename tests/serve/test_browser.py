"""The web chat at / in headless Chromium: type a message, see a recommendation, emotions and the explanation; the
page keeps to its Content-Security-Policy and sends the token with the session's DELETE."""

from __future__ import annotations

import json
import shutil

import pytest
import requests

from tests.serve.conftest import TOKENS

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


def watched_page(browser):
    """A new page and the list its errors and console messages go to (a CSP violation is a console error)."""
    page, problems = browser.new_page(), []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    return page, problems


def send(page, text: str, replies: int, timeout_ms: int = 60_000) -> dict:
    """Type and send `text`; wait for the `replies`-th reply; the body the page posted."""
    with page.expect_request(lambda r: r.url.endswith("v1/recommend")) as request:
        page.fill("#message", text)
        page.click("#send")
    # A locator, not wait_for_function: the page's CSP forbids evaluating strings in it (as it should).
    page.locator("#chat li.recommender:not(.pending)").nth(replies - 1).wait_for(timeout=timeout_ms)
    return json.loads(request.value.post_data)


def test_chat_shows_recommendation(serve_url, browser):
    page, problems = watched_page(browser)
    page.goto(f"{serve_url}/")
    page.uncheck("#generate")  # recommendation only keeps this test fast; generation is covered over HTTP
    first = send(page, "I loved Titanic and romantic movies, what should I watch?", 1)
    movies = page.locator("#movies li.movie")
    assert movies.count() == 5
    top = page.locator("#movies li.movie .name").first.inner_text()
    reply = page.locator("#chat li.recommender").last.inner_text()
    assert top in reply  # the reply names the top movie
    assert page.locator("#emotions li.emotion").count() == 5
    assert page.locator("#error").is_hidden()
    # A second turn in the same session keeps the conversation.
    page.check("#generate")
    second = send(page, "Thanks! Something funnier?", 2, timeout_ms=120_000)
    assert second["session_id"] == first["session_id"] and len(first["session_id"]) == 24  # issued by the server
    assert page.locator("#chat li.user").count() == 2
    # A session that is gone (expired; here ended behind the page's back) is replaced by a new one that gets the
    # conversation so far.
    assert requests.delete(f"{serve_url}/v1/sessions/{first['session_id']}", timeout=30).status_code == 200
    page.uncheck("#generate")
    resent = lambda r: r.url.endswith("v1/recommend") and len(json.loads(r.post_data)["dialogue"]) > 1  # noqa: E731
    with page.expect_request(resent) as again:
        send(page, "And for tonight?", 3)
    third = json.loads(again.value.post_data)
    assert third["session_id"] != first["session_id"] and len(third["dialogue"]) == 5
    assert page.locator("#error").is_hidden()
    with page.expect_response(lambda r: r.request.method == "DELETE") as ended:
        page.click("#reset")  # ends the session on the server
    assert ended.value.status == 200
    assert [p for p in problems if "404" not in p] == [], problems  # the gone session's 404, handled
    page.close()


def test_new_conversation_ends_the_session_with_the_token(secure_url, browser):
    """Behind a token, the page asks for it once and sends it with every call, the session's DELETE included."""
    page, problems = watched_page(browser)
    page.on("dialog", lambda d: d.accept(TOKENS[0]))
    page.goto(f"{secure_url}/")
    page.uncheck("#generate")
    send(page, "I loved Toy Story, anything like it?", 1)
    with page.expect_response(lambda r: r.request.method == "DELETE") as ended:
        page.click("#reset")
    assert ended.value.request.headers.get("authorization") == f"Bearer {TOKENS[0]}"
    assert ended.value.status == 200
    assert [p for p in problems if "401" not in p] == []  # the first, token-less call is a 401 by design
    page.close()
