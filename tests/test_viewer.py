"""The viewer page in a real headless Chromium (Playwright) against a real `braggtile serve`.

Jobs are submitted through the page's form. The tests watch tiles paint onto the canvas while
a job runs, then check the finished picture, the pixel readout (value against the served .npy
tile, resolution against the detector's distance and beam centre), resolution rings, live
recolouring without refetching, zooming out onto a coarser pyramid level, that nothing is
loaded from another origin; input files and a float64 series stepped with the frame slider; a
finished job reopened from its link; and cancelling a running job.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from test_service import serving

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (Debian: apt-get install chromium); see README",
    ),
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed (pip install playwright)"
    ),
]

# 1024 x 1024 pixels in 64 tiles of 128; mosaic domains and 3x3 oversampling make each tile
# take long enough that tiles land over several seconds. Beam centre: the detector centre.
DETECTOR = 1024
PIXEL_MM = 0.1
DISTANCE_MM = 200.0
WAVELENGTH_A = 1.0
ARGS = (
    "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 10 -misset 3 7 11 "
    "-mosaic 1.0 -mosaic_domains 25 -mosaic_seed 1234 -distance 200 -detpixels 1024 "
    "-pixel 0.1 -oversample 3"
)
TILE = 128


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of `braggtile serve` running in a subprocess with one worker."""
    data = tmp_path_factory.mktemp("serve")
    with serving(data, data / "jobs.db", ("--workers", "1")) as (url, _):
        yield url


@contextlib.contextmanager
def chromium_page():
    """A fresh 1280x800 page in headless Chromium; fails the test on any JavaScript error."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


@pytest.fixture
def viewer(server):
    """A page of the viewer, and the list of every URL it requested."""
    with chromium_page() as page:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server + "/")
        yield page, requested


# Installed before the page's scripts: every value the view's status attribute takes.
STATUS_LOG = """
window.statusLog = [];
new MutationObserver((records) => {
    for (const r of records) if (r.target.id === 'viewport') window.statusLog.push(r.oldValue);
}).observe(document, {attributes: true, subtree: true, attributeOldValue: true,
                      attributeFilter: ['data-status']});
"""


def viewport_state(page) -> dict:
    return page.evaluate("() => ({...document.getElementById('viewport').dataset})")


def wait_until_shown(page, deadline_s: float = 600) -> dict:
    """Wait for a final job status with every tile of the shown frame painted; the state."""
    deadline = time.monotonic() + deadline_s
    while True:
        state = viewport_state(page)
        final = state.get("status") in ("successful", "failed", "dismissed")
        if final and state.get("painted") == state.get("total") and state.get("missing") == "0":
            return state
        assert time.monotonic() < deadline, f"job not shown in time: {state}"
        page.wait_for_timeout(100)


def readout(page) -> dict:
    """The pixel readout's data: fast, slow, value, resolution (strings)."""
    page.wait_for_function("() => document.getElementById('readout').dataset.value !== undefined")
    return page.evaluate("() => ({...document.getElementById('readout').dataset})")


def canvas_pixels(page, path: Path) -> np.ndarray:
    """Screenshot of the canvas saved at `path`, as an RGB array."""
    from PIL import Image

    page.locator("#canvas").screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def test_viewer_paints_tiles_live_and_inspects_the_frame(server, viewer, tmp_path):
    page, requested = viewer

    # A bad tile size is refused and shown against the field the server names.
    page.fill("#nanobragg", ARGS)
    page.fill("#tile", "0")
    page.click("#submit")
    page.wait_for_selector("#submit-error:not([hidden])")
    assert "tile" in page.inner_text("#submit-error")
    assert "invalid" in (page.get_attribute("#tile", "class") or "")

    # Record every change of the view's state, however fast tiles arrive.
    page.evaluate(
        """() => {
        const vp = document.getElementById('viewport');
        window.viewportLog = [];
        new MutationObserver(() => window.viewportLog.push(
            [vp.dataset.status, Number(vp.dataset.painted), Number(vp.dataset.total)]
        )).observe(vp, {attributes: true});
    }"""
    )
    page.fill("#tile", str(TILE))
    page.click("#submit")
    state = wait_until_shown(page)
    assert state["status"] == "successful", state
    total = int(state["total"])
    assert total == (DETECTOR // TILE) ** 2

    # Tiles painted while the job was running: some, then more, before the end.
    log = page.evaluate("() => window.viewportLog")
    running = [painted for status, painted, _ in log if status == "running"]
    assert any(0 < painted < total for painted in running), "no partly painted frame seen"
    assert running == sorted(running), "painted tiles went backwards while running"
    assert len({p for p in running if p > 0}) > 3, "tiles did not arrive over time"
    assert page.locator("#job-status").inner_text() == "successful"
    job_id = state["job"]
    assert job_id in page.evaluate("() => location.hash")

    # The finished frame is a picture, not a blank canvas.
    page.wait_for_timeout(500)
    page.screenshot(path=str(tmp_path / "page.png"))
    finished = canvas_pixels(page, tmp_path / "finished.png")
    h, w, _ = finished.shape
    centre = finished[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].mean(axis=2)
    assert centre.std() > 10, f"finished frame looks blank (std {centre.std():.2f})"
    assert (centre > centre.min() + 60).mean() > 0.01, "too few bright pixels: no spots drawn"

    # The readout under the cursor: the served value and the resolution of that pixel.
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5 + 290, box["y"] + box["height"] * 0.5 + 250)
    under = readout(page)
    fast, slow = int(under["fast"]), int(under["slow"])
    assert 0 <= fast < DETECTOR and 0 <= slow < DETECTOR
    tile_path = f"/v1/jobs/{job_id}/frames/0/tiles/{slow // TILE}/{fast // TILE}?format=npy"
    served = np.load(io.BytesIO(get(server + tile_path)))
    assert float(under["value"]) == float(served[slow % TILE, fast % TILE])
    # 2theta from the distance and the distance to the beam centre (the detector centre).
    radius = PIXEL_MM * math.hypot(fast + 0.5 - DETECTOR / 2, slow + 0.5 - DETECTOR / 2)
    expected_d = WAVELENGTH_A / (2 * math.sin(math.atan2(radius, DISTANCE_MM) / 2))
    assert float(under["resolution"]) == pytest.approx(expected_d, rel=0.01)
    text = page.inner_text("#readout")
    assert f"fast {fast}" in text and f"slow {slow}" in text and "Å" in text

    # Resolution rings: round values inside the detector's resolution range, drawn over it.
    page.check("#rings")
    page.wait_for_function("() => document.getElementById('viewport').dataset.rings")
    rings = [float(d) for d in viewport_state(page)["rings"].split(",")]
    corner = PIXEL_MM * DETECTOR / 2 * math.sqrt(2)
    d_min = WAVELENGTH_A / (2 * math.sin(math.atan2(corner, DISTANCE_MM) / 2))
    assert len(rings) >= 3 and rings == sorted(rings, reverse=True) and rings[-1] >= d_min
    page.wait_for_timeout(300)
    with_rings = canvas_pixels(page, tmp_path / "rings.png")
    assert np.abs(with_rings - finished).mean() > 0.3, "rings not drawn"
    page.uncheck("#rings")
    page.wait_for_timeout(300)

    # Contrast changes recolour the loaded pixels without fetching them again.
    tile_requests = sum("/tiles/" in url for url in requested)
    page.select_option("#scale", "linear")
    page.fill("#vmax", "50")
    page.wait_for_timeout(500)
    linear = canvas_pixels(page, tmp_path / "linear.png")
    assert np.abs(linear - finished).mean() > 1, "changing the contrast did not repaint"
    assert sum("/tiles/" in url for url in requested) == tile_requests

    # Zoomed out, the view switches to pyramid level 1.
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)
    page.wait_for_function(
        "() => { const d = document.getElementById('viewport').dataset;"
        " return d.level === '1' && d.missing === '0'; }"
    )
    assert any("/levels/1/tiles/" in url for url in requested)
    zoomed = canvas_pixels(page, tmp_path / "zoomed_out.png")
    assert zoomed.mean(axis=2).std() > 5

    # Everything came from the server itself: no CDN, works offline.
    assert all(url.startswith(server) for url in requested), [
        url for url in requested if not url.startswith(server)
    ]


def test_viewer_sends_input_files_and_steps_through_a_float64_series(server, viewer, tmp_path):
    page, requested = viewer
    hkl = tmp_path / "P1.hkl"
    hkl.write_text(
        "".join(
            f"{h} {k} {l} {100 + 10 * abs(h + k + l)}\n"
            for h in range(-4, 5)
            for k in range(-4, 5)
            for l in range(-4, 5)  # noqa: E741 - Miller index
        )
    )
    args = (
        "-hkl P1.hkl -cell 100 100 100 90 90 90 -misset 10 20 30 -N 5 -lambda 1 "
        "-distance 300 -detpixels 96 -pixel 0.2 -osc 5 -phisteps 2"
    )
    page.fill("#nanobragg", args)
    page.fill("#frames", "2")
    page.fill("#tile", "48")
    page.select_option("#dtype", "float64")
    page.set_input_files("#inputs", str(hkl))
    page.click("#submit")
    state = wait_until_shown(page)
    assert state["status"] == "successful", state
    assert state["frame"] == "0" and state["total"] == "4"
    job_id = state["job"]
    record = json.loads(get(f"{server}/v1/jobs/{job_id}"))
    assert record["frames"] == 2 and record["dtype"] == "float64"
    assert "-hkl P1.hkl" in record["nanobragg"]

    first = canvas_pixels(page, tmp_path / "frame0.png")
    assert page.locator("#frame-control").is_visible()
    page.focus("#frame")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.getElementById('viewport').dataset.frame === '1'")
    state = wait_until_shown(page)
    assert page.inner_text("#frame-label").startswith("1")
    assert any("/frames/1/tiles/" in url for url in requested)
    second = canvas_pixels(page, tmp_path / "frame1.png")
    assert np.abs(second - first).mean() > 1, "frame 1 looks like frame 0"

    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
    under = readout(page)
    fast, slow = int(under["fast"]), int(under["slow"])
    path = f"/v1/jobs/{job_id}/frames/1/tiles/{slow // 48}/{fast // 48}?format=npy"
    served = np.load(io.BytesIO(get(server + path)))
    assert served.dtype == np.float64
    assert float(under["value"]) == float(served[slow % 48, fast % 48])

    # Reopened from its link, the finished job replays its events without turning back.
    page.add_init_script(STATUS_LOG)
    page.reload()
    state = wait_until_shown(page)
    assert state["job"] == job_id and state["total"] == "4"
    seen = page.evaluate(
        "() => [...window.statusLog, document.getElementById('viewport').dataset.status]"
    )
    assert {status for status in seen if status} == {"successful"}, seen
    assert page.locator("#cancel-job").is_hidden()


def test_viewer_cancels_a_running_job(server, viewer):
    """Cancelling dismisses the job in the viewport and the list; a list answer fetched while
    it ran but delivered after the cancel (an overtaken poll) does not show it running again."""
    page, _ = viewer
    page.fill("#nanobragg", ARGS)
    page.fill("#frames", "8")  # long enough to be still running when cancelled
    page.fill("#tile", str(TILE))
    page.click("#submit")
    page.wait_for_function(
        "() => { const d = document.getElementById('viewport').dataset;"
        " return d.status === 'running' && Number(d.painted) > 0; }",
        timeout=600_000,
    )
    held = []  # the first list answer after this point, fetched now, delivered later

    def hold_first(route):
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route("**/v1/jobs?limit=*", hold_first)
    with page.expect_request("**/v1/jobs?limit=*"):
        page.click("#refresh-jobs")
    page.click("#cancel-job")
    page.wait_for_function(
        "() => document.getElementById('viewport').dataset.status === 'dismissed'",
        timeout=120_000,
    )
    state = viewport_state(page)
    assert page.locator("#job-status").inner_text() == "dismissed"
    assert page.locator("#cancel-job").is_hidden()
    record = json.loads(get(f"{server}/v1/jobs/{state['job']}"))
    assert record["status"] == "dismissed" and record["tiles_done"] < record["tiles_total"]
    # The list shows it dismissed too, once the refresh after the cancel has answered.
    item = page.locator(f"#job-list li[data-id='{state['job']}']")
    page.locator(f"#job-list li[data-id='{state['job']}'][data-status='dismissed']").wait_for(
        timeout=60_000
    )
    # The held answer (the job running) arrives last: the list ignores it.
    route, stale = held[0]
    assert any(j["id"] == state["job"] and j["status"] == "running" for j in stale.json()["jobs"])
    answers = int(page.eval_on_selector("#job-list", "e => e.dataset.answers"))
    route.fulfill(response=stale)
    page.wait_for_function(
        f"() => Number(document.getElementById('job-list').dataset.answers) > {answers}"
    )
    assert item.get_attribute("data-status") == "dismissed"
    assert page.locator("#job-status").inner_text() == "dismissed"
