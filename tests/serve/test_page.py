"""The page at GET / in a real browser: Debian's chromium driven by Playwright, against a
real `centernet serve` of the bundled model with an API key.

The boxes the page draws (one SVG rect.box each, the server's numbers in data-*) must be
the server's JSON and `centernet detect`'s for the same file; the slider, class filter and
max-detections re-filter them as the JSON says, without asking the server again; the
downloads hold what is drawn; an oversize file, a text file and a wrong key show their
error text. Without chromium or Playwright the browser tests skip, except in CI (``CI``
set), where they fail. ``CENTERNET_PAGE_SCREENSHOT=docs/serve-page.png`` also writes the
README's screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet.datasets.coco import category_ids_for
from centernet.demo import default_model_path
from centernet.runtime.draw import class_colour
from centernet.serve.config import AccessConfig
from centernet.serve.service import DetectionService
from tests.serve.helpers import RunningServer, request, serve_process, tiny_config

KEY = "page-test-key"
REQUEST_THRESHOLD = 0.05  # what the page asks the server for (app.js)
DEFAULT_THRESHOLD = 0.30  # the slider's starting value
STATIC = Path(__file__).resolve().parents[2] / "src" / "centernet" / "serve" / "static"
SHARED_PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "photos"
SCREENSHOT_ENV = "CENTERNET_PAGE_SCREENSHOT"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, which must really run the browser."""
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    chromium = os.environ.get("CENTERNET_CHROMIUM") or shutil.which("chromium")
    if chromium is None or not Path(chromium).is_file():
        unavailable("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        # Playwright drives Debian's chromium; its own browser download is never used
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served():
    """The bundled model behind `centernet serve` with a key and a 1 MB body limit."""
    model = default_model_path()
    with serve_process(model, "--api-key", KEY, "--max-body-mb", "1") as (_, url):
        yield model, url


@pytest.fixture(scope="module")
def photo(photo_paths) -> Path:
    """A real photo (../shared/data/photos when there, else the package's copies)."""
    shared = sorted(SHARED_PHOTOS.glob("*.jpg")) if SHARED_PHOTOS.is_dir() else []
    return shared[0] if shared else photo_paths[0]


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    detect_calls: list[str] = []
    opened.on("request", lambda r: detect_calls.append(r.url) if "/v1/detect" in r.url else None)
    opened.goto(served[1] + "/")
    opened.detect_calls = detect_calls  # type: ignore[attr-defined]
    yield opened
    context.close()
    assert errors == [], errors  # no script error, ever


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def enter_key(page, key: str = KEY) -> None:
    expect(page.locator("#model")).to_have_class(re.compile(r"\berror\b"))  # it needs one
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")  # "change": the model is read again with the key
    page.locator("#api-key").blur()


def upload(page, url: str, path: Path) -> dict:
    """Choose ``path`` in the file picker, wait for the boxes; the server's JSON for the
    request the page made, asked again here (the model is deterministic; Playwright cannot
    read the body of a response to Debian's chromium)."""
    with page.expect_response(lambda r: "/v1/detect" in r.url, timeout=120_000) as answer:
        page.set_input_files("#file", str(path))
    assert answer.value.status == 200
    expect(page.locator("#message")).to_be_hidden(timeout=30_000)  # drawn
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.value.url).query))
    assert query == {"threshold": str(REQUEST_THRESHOLD), "max_dets": "100"}
    return server_json(url, path, REQUEST_THRESHOLD, 100)


def drawn(page) -> list[dict]:
    """The boxes on the page, from the overlay's rects, best first."""
    rects = page.locator("rect.box").evaluate_all(
        """nodes => nodes.map(n => ({
            class_name: n.dataset.class, class_index: Number(n.dataset.classIndex),
            category_id: Number(n.dataset.categoryId),
            score: Number(n.dataset.score), box: n.dataset.box.split(",").map(Number),
            x: n.x.baseVal.value, y: n.y.baseVal.value,
            width: n.width.baseVal.value, height: n.height.baseVal.value,
            stroke: n.getAttribute("stroke")}))"""
    )
    return list(reversed(rects))  # drawn lowest score first


def as_answer(boxes: list[dict]) -> list[dict]:
    keys = ("box", "score", "category_id", "class_index", "class_name")
    return [{k: b[k] for k in keys} for b in boxes]


def server_json(url: str, path: Path, threshold: float, max_dets: int = 100) -> dict:
    answer = request(
        url,
        "POST",
        f"/v1/detect?threshold={threshold}&max_dets={max_dets}",
        path.read_bytes(),
        {"Content-Type": "image/jpeg", "Authorization": f"Bearer {KEY}"},
    )
    assert answer.status == 200, answer.body
    body = answer.json
    for d in body["detections"]:  # the deprecated name of class_index, which the page ignores
        assert d.pop("class_id") == d["class_index"]
    return body


def command_detections(model: Path, photo: Path, threshold: float, out: Path) -> list[dict]:
    """`centernet detect` on the same file, as /v1 detections (xyxy, the class fields)."""
    done = subprocess.run(
        [sys.executable, "-m", "centernet.cli", "detect", str(model), str(photo), "--out",
         str(out), "--threshold", str(threshold)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = ["circle", "square", "triangle", "cross", "star"]  # the bundled model's
    found = []
    for entry in json.loads((out / "detections.json").read_text()):
        x, y, w, h = entry["bbox"]
        assert entry["category_id"] == category_ids_for(names)[entry["class_index"]]
        assert entry["class_name"] == names[entry["class_index"]]
        found.append(
            {
                "box": [x, y, x + w, y + h],
                "score": entry["score"],
                **{k: entry[k] for k in ("category_id", "class_index", "class_name")},
            }
        )
    return found


def assert_same_detections(got: list[dict], want: list[dict], box_atol: float = 0.0) -> None:
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want):
        keys = ("category_id", "class_index", "class_name", "score")
        assert [g[k] for k in keys] == [w[k] for k in keys], (g, w)
        np.testing.assert_allclose(g["box"], w["box"], atol=box_atol, rtol=0)


def test_the_page_draws_the_servers_boxes_and_centernet_detects(page, served, photo, tmp_path):
    model, url = served
    enter_key(page)
    expect(page.locator("#model")).to_contain_text("default_model · dlav0_34 · fp32")
    expect(page.locator("#model")).to_contain_text("input 768×768 · torch · 5 classes")
    answer = upload(page, url, photo)
    height, width = cv2.imread(str(photo)).shape[:2]
    assert (answer["width"], answer["height"]) == (width, height)
    boxes = drawn(page)
    want = [d for d in answer["detections"] if d["score"] >= DEFAULT_THRESHOLD]
    assert len(want) >= 3  # else the comparisons prove little
    assert as_answer(boxes) == want  # exactly the server's numbers, in its order
    # and what the server answers when asked at the slider's threshold directly
    assert server_json(url, photo, DEFAULT_THRESHOLD)["detections"] == want
    # and `centernet detect` on the same file (its xywh rounded to 0.01: box to 0.02)
    detected = command_detections(model, photo, DEFAULT_THRESHOLD, tmp_path / "detect")
    assert_same_detections(as_answer(boxes), detected, box_atol=0.02)
    # each rect sits on its box, scaled to the displayed image, in its class's colour
    shown_width = page.locator("#image").evaluate("image => image.clientWidth")
    scale = shown_width / width
    for b in boxes:
        x0, y0, x1, y1 = b["box"]
        assert b["x"] == pytest.approx(x0 * scale, abs=0.01)
        assert b["y"] == pytest.approx(y0 * scale, abs=0.01)
        assert b["width"] == pytest.approx((x1 - x0) * scale, abs=0.01)
        assert b["height"] == pytest.approx((y1 - y0) * scale, abs=0.01)
        blue, green, red = class_colour(b["class_index"])  # as `detect --save-images` draws
        assert b["stroke"] == f"rgb({red}, {green}, {blue})"
    labels = page.locator(".labels text").all_text_contents()
    assert sorted(labels) == sorted(f"{d['class_name']} {d['score']:.2f}" for d in want)
    stats = {
        key: page.inner_text(f"#stat-{key}") for key in ("boxes", "server", "round-trip", "image")
    }
    assert stats["boxes"] == f"{len(want)} of {len(answer['detections'])}"
    assert stats["image"] == f"{width}×{height}"
    server_ms, round_trip_ms = (
        float(stats[k].removesuffix(" ms")) for k in ("server", "round-trip")
    )
    assert 0 < server_ms <= round_trip_ms
    page.screenshot(path=str(tmp_path / "page.png"))
    if os.environ.get(SCREENSHOT_ENV):
        page.screenshot(path=os.environ[SCREENSHOT_ENV])


def test_slider_classes_and_max_detections_refilter_without_asking_again(page, served, photo):
    enter_key(page)
    answer = upload(page, served[1], photo)
    found = answer["detections"]
    asked = len(page.detect_calls)
    counts = {}
    for threshold in (0.05, 0.1, 0.2, 0.3, 0.5, 0.9):
        page.locator("#threshold").fill(str(threshold))
        want = [d for d in found if d["score"] >= threshold]
        counts[threshold] = len(want)
        assert as_answer(drawn(page)) == want, threshold
        assert page.inner_text("#threshold-value") == f"{threshold:.2f}"
    assert len(set(counts.values())) >= 4, counts  # the slider did change what is drawn
    # as the server would answer at that threshold
    assert server_json(served[1], photo, 0.2)["detections"] == [
        d for d in found if d["score"] >= 0.2
    ]
    page.locator("#threshold").fill("0.1")
    square = page.locator("#classes label", has_text="square").locator("input")
    square.uncheck()
    want = [d for d in found if d["score"] >= 0.1 and d["class_name"] != "square"]
    assert as_answer(drawn(page)) == want and len(want) < counts[0.1]
    square.check()
    page.fill("#max-dets", "7")
    page.press("#max-dets", "Tab")  # "change"
    assert as_answer(drawn(page)) == [d for d in found if d["score"] >= 0.1][:7]
    assert server_json(served[1], photo, 0.1, max_dets=7)["detections"] == as_answer(drawn(page))
    assert len(page.detect_calls) == asked  # none of it asked the server again
    # more than was asked for: the page asks again, with the new max_dets
    with page.expect_response(lambda r: "/v1/detect" in r.url):
        page.fill("#max-dets", "150")
        page.press("#max-dets", "Tab")
    assert page.detect_calls[-1].endswith("max_dets=150") and len(page.detect_calls) == asked + 1


def test_drop_and_paste_send_the_image_too_and_the_key_stays_for_the_tab(page, served, photo):
    enter_key(page)
    expect(page.locator("#model")).to_contain_text("dlav0_34")
    assert page.evaluate("() => sessionStorage.getItem('centernet-api-key')") == KEY
    page.reload()  # the same tab: the key is still there, the model is read with it
    assert page.input_value("#api-key") == KEY
    expect(page.locator("#model")).to_contain_text("dlav0_34")
    want = [
        d
        for d in server_json(served[1], photo, REQUEST_THRESHOLD)["detections"]
        if d["score"] >= DEFAULT_THRESHOLD
    ]
    data = base64.b64encode(photo.read_bytes()).decode()
    make_file = """([data, name]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
        return transfer;
    }"""
    transfer = page.evaluate_handle(make_file, [data, "dropped.jpg"])
    with page.expect_response(lambda r: "/v1/detect" in r.url, timeout=120_000):
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    expect(page.locator("#stat-file")).to_have_text("dropped.jpg", timeout=30_000)
    assert as_answer(drawn(page)) == want
    paste = f"""([data, name]) => {{
        const transfer = ({make_file})([data, name]);
        document.dispatchEvent(new ClipboardEvent("paste", {{ clipboardData: transfer }}));
    }}"""
    with page.expect_response(lambda r: "/v1/detect" in r.url, timeout=120_000):
        page.evaluate(paste, [data, "pasted.jpg"])
    expect(page.locator("#stat-file")).to_have_text("pasted.jpg", timeout=30_000)
    assert as_answer(drawn(page)) == want


def test_downloads_hold_what_is_drawn(page, served, photo, tmp_path):
    enter_key(page)
    answer = upload(page, served[1], photo)
    page.locator("#threshold").fill("0.4")
    boxes = drawn(page)
    assert boxes
    with page.expect_download() as saved:
        page.click("#save-json")
    saved.value.save_as(tmp_path / "boxes.json")
    document = json.loads((tmp_path / "boxes.json").read_text())
    assert saved.value.suggested_filename == f"{photo.stem}.detections.json"
    assert document["detections"] == as_answer(boxes)
    assert (document["width"], document["height"], document["threshold"]) == (
        answer["width"], answer["height"], 0.4
    )  # fmt: skip
    with page.expect_download() as saved:
        page.click("#save-png")
    saved.value.save_as(tmp_path / "boxes.png")
    picture = cv2.imread(str(tmp_path / "boxes.png"))
    original = cv2.imread(str(photo))
    assert picture.shape == original.shape
    best = boxes[0]  # drawn last: nothing covers its edges
    x0, y0, x1, y1 = best["box"]
    colour = np.array(class_colour(best["class_index"]))
    row, columns = int(round((y0 + y1) / 2)), slice(int(x0) - 1, int(x0) + 2)

    def closest(image: np.ndarray) -> int:  # across the 2-px line (anti-aliased edges)
        return int(np.abs(image[row, columns].astype(int) - colour).max(axis=1).min())

    assert closest(picture) <= 30 < closest(original)  # the line is there, in its colour


def test_errors_show_their_text(page, tmp_path):
    oversize = tmp_path / "big.jpg"
    oversize.write_bytes(np.random.default_rng(0).bytes(1_500_000))  # over --max-body-mb 1
    text = tmp_path / "notes.txt"
    text.write_text("this is not a picture\n")
    cases = [
        (text, "The server cannot use this file (400): not a decodable image", 400),
        (oversize, "Too large (413): body of 1.4 MB is over the 1 MB limit (--max-body-mb)", 413),
    ]
    enter_key(page, "a-wrong-key")
    expect(page.locator("#model")).to_contain_text("wrong API key")
    for path, message, status in [(text, "Not authorized (401): wrong API key", 401)]:
        page.set_input_files("#file", str(path))
        expect(page.locator("#message.error")).to_contain_text(message)
        assert page.get_attribute("#message", "data-status") == str(status)
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    expect(page.locator("#model")).to_contain_text("dlav0_34")
    for path, message, status in cases:
        page.set_input_files("#file", str(path))
        expect(page.locator("#message.error")).to_contain_text(message, timeout=30_000)
        assert page.get_attribute("#message", "data-status") == str(status)
        assert page.locator("rect.box").count() == 0
        assert page.is_disabled("#save-json") and page.is_disabled("#save-png")
        expect(page.locator("h1")).to_have_text("centernet")  # the page is still whole
    page.screenshot(path=str(tmp_path / "error.png"))


# -- without a browser -------------------------------------------------------------------


def test_the_page_is_self_contained():
    """Nothing is fetched from another site: no URL but the SVG namespace, no @import."""
    files = {name: (STATIC / name).read_text() for name in ("index.html", "app.js", "app.css")}
    for name, content in files.items():
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", content))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
        assert "@import" not in content and "url(" not in content, name
    assert 'src="ui/app.js"' in files["index.html"] and 'href="ui/app.css"' in files["index.html"]


def test_the_page_is_served_open_and_no_ui_turns_it_off(tiny_onnx_dynamic):
    config = tiny_config(tiny_onnx_dynamic, access=AccessConfig(api_keys=(KEY,)))
    with RunningServer(DetectionService(config)) as server:
        page = server.request("GET", "/")
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
        assert page.body == (STATIC / "index.html").read_bytes()
        assert "script-src 'self'" in page.headers["content-security-policy"]
        script = server.request("GET", "/ui/app.js")
        assert script.status == 200 and script.body == (STATIC / "app.js").read_bytes()
    config = tiny_config(tiny_onnx_dynamic, access=AccessConfig(ui=False))
    with RunningServer(DetectionService(config)) as server:
        for path in ("/", "/ui/app.js", "/ui/index.html"):
            answer = server.request("GET", path)
            assert answer.status == 404 and "no route" in answer.json["error"], path
