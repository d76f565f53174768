"""The viewer against a ``braggtile serve --token`` in headless Chromium (Playwright).

Proves: the page loads without the token, asks for it once (a prompt) on the API's first 401,
then lists jobs, submits one and paints all its tiles: fetches send ``Authorization: Bearer``,
the EventSource stream carries a short-lived ``ticket`` (never the token), and download links
carry no secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_service import serving
from test_viewer import chromium_page, pytestmark, sync_playwright, wait_until_shown

TOKEN = "viewer-t0ken"
ARGS = "-cell 100 100 100 90 90 90 -N 5 -default_F 100 -detpixels 64 -oversample 1"
__all__ = ["pytestmark"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("viewer-token")
    with serving(data, data / "jobs.db", ("--workers", "1", "--token", TOKEN)) as (url, _):
        yield url


def test_viewer_asks_for_the_token_then_works(server: str) -> None:
    assert sync_playwright is not None
    prompts: list[str] = []
    requests: list[tuple[str, str | None]] = []

    def answer(dialog) -> None:
        prompts.append(dialog.message)
        dialog.accept(TOKEN)

    with chromium_page() as page:
        page.on("dialog", answer)
        page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
        page.goto(server + "/")
        page.fill("#nanobragg", ARGS)
        page.fill("#tile", "32")
        page.click("#submit")
        state = wait_until_shown(page, 300)
        assert state["status"] == "successful", state
        assert len(prompts) == 1 and "token" in prompts[0], prompts
        links = page.eval_on_selector_all("#job-links a", "els => els.map(e => e.href)")
        assert links and not any(TOKEN in href or "ticket" in href for href in links), links
        with page.expect_download() as download:
            page.click("#job-links a >> text=float")
        assert Path(download.value.path()).stat().st_size == 64 * 64 * 4
    events = [url for url, _ in requests if url.split("?")[0].endswith("/events")]
    assert events and all("ticket=" in url and TOKEN not in url for url in events), events
    tickets = [auth for url, auth in requests if url.endswith("/events/ticket")]
    assert tickets and all(auth == f"Bearer {TOKEN}" for auth in tickets), tickets
    tiles = [auth for url, auth in requests if "/tiles/" in url]
    assert tiles and all(auth == f"Bearer {TOKEN}" for auth in tiles), tiles
