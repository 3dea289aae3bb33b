"""The web page of ``molmo2 serve`` (``GET /``) and its drawing route (``POST /viewer/render``).

Without a browser: the page is self-contained (no external resource) and carries the verbs' prompts; the
render route returns ``molmo2.viz``'s viewer for a grounding and refuses bad input with its status.
In headless Chromium (Playwright driving Debian's /usr/bin/chromium, skipped when either is missing):
upload an image, ask, wait for the streamed answer, check that the points are drawn on the viewer's
canvas; then a video, whose track appears on the timeline; screenshots are written next to the test's
temporary files (and to $MOLMO2_SCREENSHOTS when set)."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve.helpers import GroundedPipe, live_server

from molmo2.inference.pipeline import PROMPTS
from molmo2.serve import ChatHandler, ServeLimits, build_app
from molmo2.viz import PALETTE

KEY = "page-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def app():  # one per test: an app's lifespan (the handler's worker) ends with its server
    return build_app(ChatHandler(GroundedPipe(), "grounded", ServeLimits()), api_key=KEY)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("page") / "field.png"
    Image.new("RGB", (200, 120), (235, 235, 235)).save(path)
    return path


def _data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def test_page_is_self_contained_and_open(app):
    with TestClient(app) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
        assert "<link" not in page and "src=" not in page.split("<script>")[0]
        data = json.loads(page.split('id="molmo2-page">')[1].split("</script>")[0])
        assert data["model"] == "grounded" and data["prompts"] == PROMPTS


def test_render_returns_the_viz_viewer_and_refuses_bad_input(app, image_file, media_dir):
    with TestClient(app) as c:
        ask = {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _data_url(image_file, "image/png")}},
            {"type": "text", "text": "Point to the dogs."}]}]}
        grounding = c.post("/v1/chat/completions", json=ask, headers=AUTH).json()["choices"][0]["message"]["grounding"]
        assert len(grounding["points"]) == 2
        body = {"media": [_data_url(image_file, "image/png")], "kind": "image", "grounding": grounding}
        r = c.post("/viewer/render", json=body, headers=AUTH)
        assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
        assert json.loads(r.text.split('id="molmo2-result">')[1].split("</script>")[0]) == grounding
        video = {"media": [_data_url(media_dir / "clip.mp4", "video/mp4")], "kind": "video",
                 "grounding": {"text": "", "sizes": [[64, 48]], "points": [], "tracks": [],
                               "count": {"stated": None, "pointed": 0}, "errors": []}}
        config = c.post("/viewer/render", json=video, headers=AUTH).text.split('id="molmo2-config">')[1]
        assert json.loads(config.split("</script>")[0])["media"]["src"].startswith("data:video/mp4;base64,")
        for bad, status in [({**body, "grounding": {"points": 3}}, 422), ({**body, "media": []}, 422),
                            ({**body, "media": ["/etc/passwd"]}, 403), ({**body, "kind": "film"}, 422),
                            ({**body, "media": ["data:image/png;base64,aGVsbG8="]}, 400),
                            ({**video, "media": video["media"] * 2}, 400)]:
            r = c.post("/viewer/render", json=bad, headers=AUTH)
            assert r.status_code == status and r.json()["error"]["message"], (bad, r.text)
        assert c.post("/viewer/render", content=b"{", headers=AUTH).status_code == 400
        assert c.post("/viewer/render", json=body).status_code == 401


def _chromium_page(pw, tmp_path):
    exe = os.environ.get("MOLMO2_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set MOLMO2_CHROMIUM)")
    browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    return browser, page


def _shoot(page, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=True)
    if os.environ.get("MOLMO2_SCREENSHOTS"):
        Path(os.environ["MOLMO2_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(os.environ["MOLMO2_SCREENSHOTS"]) / name)
    return out


def _near(rgba, color, tol=40) -> bool:
    return max(abs(int(a) - int(b)) for a, b in zip(rgba[:3], color)) <= tol


def test_browser_upload_ask_and_see_the_overlay(app, image_file, media_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with live_server(app) as url, sync_api.sync_playwright() as pw:
        browser, page = _chromium_page(pw, tmp_path)
        try:
            page.goto(url + "/")
            page.fill("#key", KEY)
            page.set_input_files("#file", str(image_file))
            page.select_option("#verb", "point")
            page.fill("#question", "dogs")
            page.click("#go")
            page.wait_for_selector("body[data-state=done]", timeout=30_000)
            assert page.inner_text("#status") == "done: 2 points, 0 tracks, count 2"
            assert "<points" in page.inner_text("#answer")
            viewer = page.frame_locator("#viewer")
            viewer.locator("canvas").first.wait_for(timeout=10_000)
            frame = page.frame(url=lambda u: u == "about:srcdoc")
            frame.wait_for_function("document.querySelector('img') && document.querySelector('img').complete")
            # the two points, drawn on the canvas over the image at (50, 60) and (150, 60) in image pixels
            pixels = frame.evaluate("""() => {
                const img = document.querySelector('img'), c = document.querySelector('canvas');
                const sx = c.width / 200, sy = c.height / 120, ctx = c.getContext('2d');
                return [[50, 60], [150, 60], [100, 20]].map(([x, y]) =>
                    Array.from(ctx.getImageData(Math.round(x * sx), Math.round(y * sy), 1, 1).data));
            }""")
            assert _near(pixels[0], PALETTE[0]) and _near(pixels[1], PALETTE[1]), pixels  # one colour per object
            assert pixels[2][3] == 0  # nothing drawn away from the points
            shot = np.asarray(Image.open(_shoot(page, tmp_path, "page-image.png")).convert("RGB")).astype(int)
            assert (np.abs(shot - np.array(PALETTE[0])).max(axis=-1) <= 30).sum() > 20  # visible in the page

            # a video: the track shows on the viewer's timeline
            page.set_input_files("#file", str(media_dir / "clip.mp4"))
            page.select_option("#verb", "track")
            page.fill("#question", "the square")
            page.evaluate("document.body.dataset.state = ''")
            page.click("#go")
            page.wait_for_selector("body[data-state=done]", timeout=30_000)
            assert page.inner_text("#status") == "done: 0 points, 1 tracks"
            frame = page.frame(url=lambda u: u == "about:srcdoc")
            frame.wait_for_selector("#timeline .span")
            assert frame.locator("#timeline .span").count() == 1
            assert frame.locator("#timeline .tick").count() == 3
            _shoot(page, tmp_path, "page-video.png")

            # an error is shown, not swallowed
            page.fill("#key", "wrong")
            page.click("#go")
            page.wait_for_function("document.getElementById('status').className === 'error'")
            assert "API key" in page.inner_text("#status")
        finally:
            browser.close()
