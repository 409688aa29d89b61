"""The web app in a real browser (Debian's chromium through Playwright) against the real gateway and mesh.

POSTER_UPDATE_SCREENSHOTS=1 also writes the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Page, async_playwright
from psd_tools import PSDImage

from gateway.app import create_app
from gateway.server import running
from samples.synthetic import make_poster
from services.common.config import Settings
from services.common.images import encode_png
from services.mesh import LocalMesh

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "poster.png"
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def web_url(redis_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """The mesh and the gateway with the web app, on free loopback ports."""
    settings = Settings(redis_url=redis_url, blob_root=f"file://{tmp_path / 'blobs'}", job_timeout_s=120)
    async with LocalMesh(settings) as mesh, running(create_app(settings, mesh.redis.client, mesh.ingest_target)) as url:
        yield url


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run scripts/setup.sh", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def screenshot(page: Page, name: str) -> None:
    if os.environ.get("POSTER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / name, full_page=True)


async def wait_until(page: Page, expression: str, timeout_s: float = 30) -> None:
    """Polls a JavaScript expression until it is true (page.wait_for_function needs eval, which the CSP forbids)."""
    for _ in range(int(timeout_s / 0.1)):
        if await page.evaluate(expression):
            return
        await page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout_s} s: {expression}")


async def canvas_digest(page: Page) -> str:
    """A digest of the canvas pixels (equal only when every pixel is)."""
    data_url = await page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    return hashlib.sha256(data_url.encode()).hexdigest()


async def test_upload_follow_edit_and_download_in_a_browser(web_url, browser, tmp_path) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(web_url)
    await page.wait_for_selector("#limits-note:has-text('10 MB')")

    # The file picker is reachable from the keyboard.
    for _ in range(5):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "file-input":
            break
    assert await page.evaluate("document.activeElement.id") == "file-input"

    await page.select_option("#opt-engine", "classic")
    await page.set_input_files("#file-input", str(SAMPLE))
    card = page.locator(".job").first
    await card.locator(".job-name:has-text('poster.png')").wait_for()
    await wait_until(page, "document.querySelector('.job .bar').getAttribute('aria-valuenow') !== '0'")
    await screenshot(page, "upload-progress.png")
    await page.locator(".job.succeeded").first.wait_for(timeout=120_000)
    assert await card.locator(".job-stage").inner_text() == "Done"

    await card.locator(".job-open").click()
    layers = page.locator("#layers .layer")
    await wait_until(page, "document.querySelectorAll('#layers .layer').length > 2")
    count = await layers.count()
    assert "layers" in await page.locator("#result-meta").inner_text()
    assert await page.locator("#layers .thumb").first.get_attribute("loading") == "lazy"
    await wait_until(
        page, "[...document.querySelectorAll('#layers .thumb')].every(i => i.complete && i.naturalWidth > 0)"
    )
    original = await canvas_digest(page)
    await screenshot(page, "result.png")

    # Hide the top layer: the canvas changes; show it again: it is back.
    top = layers.first
    await top.locator(".visible").uncheck()
    hidden = await canvas_digest(page)
    assert hidden != original
    await top.locator(".visible").check()
    assert await canvas_digest(page) == original

    # Solo one layer, then back.
    await top.locator(".solo").click()
    assert await top.locator(".solo").get_attribute("aria-pressed") == "true"
    assert await canvas_digest(page) != original
    await top.locator(".solo").click()
    assert await canvas_digest(page) == original

    # Move the top layer by dragging it on the canvas, then nudge it with the keyboard.
    await top.locator(".layer-name").click()
    name = await top.locator(".layer-name").inner_text()
    await wait_until(page, f"document.getElementById('sel-name').textContent === {json.dumps(name)}", timeout_s=10)
    bbox = await page.evaluate(
        "(name) => window.fetch(location.origin + document.querySelector('#dl-psd').getAttribute('href')"
        ".replace(/exports\\/psd$/, '')).then(r => r.json()).then(j => j.layers.find(l => l.name === name).bbox)",
        name,
    )
    # Measured after the selection panel has appeared (no layout shift left), with the layer's
    # centre scrolled into the middle of the viewport, where the pointer can reach it.
    box = await page.evaluate(
        """(bbox) => {
            const canvas = document.getElementById('canvas');
            let rect = canvas.getBoundingClientRect();
            const scale = rect.width / canvas.width;
            const y = rect.top + (bbox[1] + bbox[3] / 2) * scale;
            window.scrollBy(0, y - window.innerHeight / 2);
            rect = canvas.getBoundingClientRect();
            return {left: rect.left, top: rect.top, scale: scale};
        }""",
        bbox,
    )
    start_x = box["left"] + (bbox[0] + bbox[2] / 2) * box["scale"]
    start_y = box["top"] + (bbox[1] + bbox[3] / 2) * box["scale"]
    assert await page.evaluate(f"document.elementFromPoint({start_x}, {start_y}).id") == "canvas"
    await page.mouse.move(start_x, start_y)
    await page.mouse.down()
    await page.mouse.move(start_x + 60, start_y + 30, steps=5)
    await page.mouse.up()
    # The editor updates the fields on its next frame; a loaded machine can take a moment.
    await wait_until(page, "document.getElementById('tx').value !== '0'", timeout_s=10)
    moved_x = int(await page.locator("#tx").input_value())
    assert moved_x == pytest.approx(60 / box["scale"], abs=3)
    await page.locator("#canvas").focus()
    await page.keyboard.press("Shift+ArrowRight")
    await wait_until(page, f"document.getElementById('tx').value === '{moved_x + 10}'", timeout_s=10)
    await page.locator("#tr").fill("15")
    assert await page.locator("#tr-out").inner_text() == "15°"
    edited = await canvas_digest(page)
    assert edited != original

    # Reorder: move the bottom layer (background) one step up with the keyboard control.
    bottom_name = await layers.last.locator(".layer-name").inner_text()
    await layers.last.locator(".up").click()
    assert await layers.nth(count - 2).locator(".layer-name").inner_text() == bottom_name

    # Downloads: the PSD from the server, the edited composite from the canvas.
    async with page.expect_download() as download_info:
        await page.locator("#dl-psd").click()
    download = await download_info.value
    assert download.suggested_filename == "poster.psd"
    psd_path = tmp_path / "poster.psd"
    await download.save_as(psd_path)
    document = PSDImage.open(psd_path)
    assert (document.width, document.height) == (864, 1152)
    assert len(list(document.descendants())) >= count - 1
    async with page.expect_download() as download_info:
        await page.locator("#dl-png").click()
    png = await download_info.value
    assert png.suggested_filename == "poster-edited.png"
    with Image.open(io.BytesIO(Path(await png.path()).read_bytes())) as composite:
        assert composite.size == (864, 1152)

    await page.locator("#reset").click()
    assert await canvas_digest(page) == original

    await page.locator("#fb-good").click()
    await page.wait_for_selector("#fb-status:has-text('Thanks')")
    assert await page.locator("#fb-good").get_attribute("aria-pressed") == "true"

    # A phone-sized screen: one column, nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.wait_for_timeout(200)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "result-phone.png")
    assert errors == []


async def test_a_refused_upload_is_explained_in_words(web_url, browser, tmp_path) -> None:
    page = await browser.new_page()
    await page.goto(web_url)
    await page.wait_for_selector("#limits-note:has-text('10 MB')")
    fake = tmp_path / "notes.png"
    fake.write_text("this is a text file with the wrong name")
    await page.set_input_files("#file-input", str(fake))
    error = page.locator("#upload-error")
    await error.wait_for(state="visible")
    assert "not a PNG, JPEG or WebP" in await error.inner_text()
    await screenshot(page, "upload-error.png")


async def test_a_zip_of_posters_is_one_batch_with_n_of_m_and_one_download(web_url, browser, tmp_path) -> None:
    page = await browser.new_page(accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(web_url)
    await page.wait_for_selector("#limits-note:has-text('ZIP')")
    posters = tmp_path / "posters.zip"
    with zipfile.ZipFile(posters, "w") as archive:
        for name, seed in (("spring.png", 1), ("autumn.png", 2)):
            archive.writestr(name, encode_png(make_poster(seed, width=240, height=320).image))
        archive.writestr("readme.txt", "two posters")
    await page.select_option("#opt-engine", "classic")
    await page.set_input_files("#file-input", str(posters))
    batch = page.locator(".batch")
    await batch.locator(".batch-name:has-text('posters.zip')").wait_for()
    assert "readme.txt: not a PNG, JPEG or WebP image" in await page.locator("#upload-error").inner_text()
    assert await page.locator(".job").count() == 2
    await batch.locator(".batch-count:has-text('2 of 2 done')").wait_for(timeout=120_000)
    link = batch.locator(".batch-download")
    await link.wait_for(state="visible")
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename.startswith("batch-") and download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(Path(await download.path())) as archive:
        names = set(archive.namelist())
        summary = json.loads(archive.read("batch.json"))
    assert {"01-spring/manifest.json", "02-autumn/manifest.json"} <= names
    assert (summary["done"], summary["total"], summary["status"]) == (2, 2, "succeeded")
    assert errors == []
