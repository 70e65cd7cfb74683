"""A real browser (Debian's headless chromium via Playwright) drives the demo's canvas end to end.

At 1280×800: click, Shift+click, Alt+click, box select, drag-move (the pixels land at the drop
point; a second drag repositions without new deletions), Ctrl+Z, Delete, Generate into the
before/after view, and a failed upload that keeps the image and its edits. At 390×844 with
touch: canvas first, no horizontal scroll, a tap selects and a touch drag moves.

Screenshots are test artifacts: written to ``$EIE_TEST_ARTIFACTS`` (default: pytest's tmp
folder). The committed ones in docs/images/ are refreshed only on request::

    EIE_UPDATE_SCREENSHOT=1 python -m pytest tests/test_app_browser.py
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import serve_demo

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
DOCS_IMAGES = ROOT / "docs" / "images"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)

#: In-page helpers: the canvas state is window.__eie (elements/ui/canvas.js).
JS_ELEMENT = """(skip) => {  // the largest element not in `skip`: an interior pixel near its middle, image px
  const S = window.__eie.state, area = new Map();
  for (const l of S.labels) if (l >= 0) area.set(l, (area.get(l) || 0) + 1);
  const ids = [...area.keys()].filter((i) => !skip.includes(i)).sort((a, b) => area.get(b) - area.get(a));
  const k = ids[0], xs = [], ys = [];
  for (let y = 2; y < S.h - 2; y++) for (let x = 2; x < S.w - 2; x++) {
    const i = y * S.w + x;
    if (S.labels[i] === k && S.labels[i - 2] === k && S.labels[i + 2] === k && S.labels[i - 2 * S.w] === k && S.labels[i + 2 * S.w] === k) { xs.push(x); ys.push(y); }
  }
  const m = Math.floor(xs.length / 2);
  return { id: k, x: xs[m] + 0.5, y: ys[m] + 0.5 };
}"""
JS_PIXELS = """(pts) => {  // RGB of the photo canvas at image px points (zoom 1)
  const S = window.__eie.state, c = document.querySelector('#canvas canvas.eie-photo');
  const x = c.getContext('2d'), s = S.fit * S.zoom * S.dpr;
  return pts.map(([px, py]) => Array.from(x.getImageData(Math.floor(px * s + S.ox * S.dpr), Math.floor(py * s + S.oy * S.dpr), 1, 1).data.slice(0, 3)));
}"""
JS_MARKS_RED = """() => {  // count of selection-outline pixels on the marks canvas
  const c = document.querySelector('#canvas canvas.eie-marks'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] === 255 && d[i + 1] === 40 && d[i + 2] === 40 && d[i + 3] === 255) n++;
  return n;
}"""


@pytest.fixture(scope="module")
def url():
    with serve_demo() as address:
        yield address


@pytest.fixture
def artifacts(tmp_path):
    d = Path(os.environ.get("EIE_TEST_ARTIFACTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_shot(page, artifacts, name):
    page.screenshot(path=str(artifacts / name))
    if os.environ.get("EIE_UPDATE_SCREENSHOT"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / name))


def counts(page) -> dict:
    text = page.locator("#status").inner_text()
    return {k: int(v) for v, k in re.findall(r"(\d+) (elements|selected|edited|deleted)", text)}


def to_page(page, x, y):
    """Image px -> viewport px (zoom 1), as Playwright's mouse and touchscreen take them."""
    box = page.locator("#canvas .eie-stage").bounding_box()
    fit = page.evaluate("window.__eie.state.fit")
    return box["x"] + x * fit, box["y"] + y * fit


def click_with(page, xy, key):
    page.keyboard.down(key)
    page.mouse.click(*xy)
    page.keyboard.up(key)


def pick_example(page, n, expect):
    page.locator("button.gallery-item").nth(n).click()
    expect(page.locator("#status")).to_contain_text("0 selected", timeout=60_000)
    page.wait_for_function("window.__eie && window.__eie.state.labels !== null", timeout=30_000)


def selection(page) -> set:
    return set(page.evaluate("[...window.__eie.state.sel]"))


def test_canvas_gestures_at_1280x800(url, artifacts, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url, wait_until="domcontentloaded")
            expect(page.locator("#banner")).to_contain_text("Fast CPU mode", timeout=30_000)
            assert page.locator("#generate").bounding_box()["y"] + 40 < 800  # Generate visible without scrolling
            pick_example(page, 0, expect)  # the astronaut, 512x512
            assert page.evaluate("window.__eie.state.cssW") > 512  # small images are scaled up

            # click selects (visible at once), Shift adds, Alt subtracts, a plain click toggles
            a = page.evaluate(JS_ELEMENT, [])
            b = page.evaluate(JS_ELEMENT, [a["id"]])
            assert page.evaluate(JS_MARKS_RED) == 0
            page.mouse.click(*to_page(page, a["x"], a["y"]))
            assert selection(page) == {a["id"]} and page.evaluate(JS_MARKS_RED) > 50
            expect(page.locator("#status")).to_contain_text("1 selected", timeout=10_000)
            click_with(page, to_page(page, b["x"], b["y"]), "Shift")
            assert selection(page) == {a["id"], b["id"]}
            click_with(page, to_page(page, a["x"], a["y"]), "Alt")
            assert selection(page) == {b["id"]}
            expect(page.locator("#status")).to_contain_text("1 selected", timeout=10_000)
            page.keyboard.press("Escape")
            expect(page.locator("#status")).to_contain_text("0 selected", timeout=10_000)

            # box select: a drag that starts on an unselected element
            page.mouse.move(*to_page(page, 150, 300))
            page.mouse.down()
            page.mouse.move(*to_page(page, 260, 380), steps=6)
            page.mouse.up()
            boxed = selection(page)
            cents = page.evaluate("window.__eie.state.centroids")
            inside = {i for i, c in enumerate(cents) if c and 150 <= c[0] <= 260 and 300 <= c[1] <= 380}
            assert len(boxed) >= 3 and boxed == inside
            expect(page.locator("#status")).to_contain_text(f"{len(boxed)} selected", timeout=10_000)
            page.keyboard.press("Escape")

            # wheel zooms about the pointer, Fit goes back
            page.mouse.move(*to_page(page, 256, 256))
            page.mouse.wheel(0, -400)
            page.wait_for_function("window.__eie.state.zoom > 1.5", timeout=5_000)
            page.locator("#canvas button[data-act=fit]").click()
            assert page.evaluate("window.__eie.state.zoom") == 1

            # drag-move: select a, drag it; its pixels land at the drop point
            page.mouse.click(*to_page(page, a["x"], a["y"]))
            n0 = counts(page)
            labels = np.array(page.evaluate("Array.from(window.__eie.state.labels)")).reshape(512, 512)
            ys, xs = np.nonzero(labels == a["id"])
            pick = np.linspace(0, len(xs) - 1, 25).astype(int)
            src = [[float(xs[i]) + 0.5, float(ys[i]) + 0.5] for i in pick]
            before = np.array(page.evaluate(JS_PIXELS, src))
            start = to_page(page, a["x"], a["y"])
            page.mouse.move(*start)
            page.mouse.down()
            page.mouse.move(start[0] + 70, start[1] + 20, steps=10)
            assert page.evaluate("window.__eie.state.g && window.__eie.state.g.kind") == "move"
            save_shot(page, artifacts, "canvas-drag-1280.png")  # the ghost, mid-drag
            page.mouse.up()
            expect(page.locator("#status")).to_contain_text("1 edited", timeout=30_000)
            page.wait_for_function("window.__eie.state.pending === null", timeout=30_000)
            move1 = page.evaluate("window.__eie.sent.filter((e) => e.type === 'move').at(-1)")
            assert move1["ids"] == [a["id"]] and move1["dx"] > 40
            dst = [[x + move1["dx"], y + move1["dy"]] for x, y in src]
            after = np.array(page.evaluate(JS_PIXELS, dst))
            assert np.median(np.abs(after - before)) <= 12, "the element's pixels are not at the drop point"
            first = counts(page)
            save_shot(page, artifacts, "canvas-selection-1280.png")

            # a second drag of the same selection repositions: deletions as for one move to the final place
            here = to_page(page, a["x"] + move1["dx"], a["y"] + move1["dy"])
            page.mouse.move(*here)
            page.mouse.down()
            page.mouse.move(here[0] - 30, here[1] + 60, steps=10)
            page.mouse.up()
            page.wait_for_function(
                "window.__eie.sent.filter((e) => e.type === 'move').length === 2 && window.__eie.state.pending === null",
                timeout=30_000,
            )
            move2 = page.evaluate("window.__eie.sent.filter((e) => e.type === 'move').at(-1)")
            expect(page.locator("#status")).to_contain_text("undo ✓", timeout=30_000)
            page.wait_for_timeout(300)
            second = counts(page)
            expected = expected_deleted(a["id"], move1["dx"] + move2["dx"], move1["dy"] + move2["dy"])
            assert second["deleted"] == expected and first["deleted"] - n0["deleted"] >= 0

            # Ctrl+Z undoes the second drag; Delete removes the selection
            page.keyboard.press("Control+z")
            expect(page.locator("#status")).to_contain_text(f"{first['deleted']} deleted", timeout=30_000)
            page.keyboard.press("Delete")
            expect(page.locator("#status")).to_contain_text(f"{first['deleted'] + 1} deleted", timeout=30_000)
            expect(page.locator("#status")).to_contain_text("0 selected")

            # Generate: the result in place, before/after
            page.locator("#generate").click()
            result = page.locator("#result-view img").last
            expect(result).to_be_visible(timeout=120_000)
            page.wait_for_timeout(500)
            assert page.locator("#result-view img").count() == 2  # input and result
            save_shot(page, artifacts, "canvas-result-1280.png")

            # a failed upload keeps the image and its edits, and says why in one line
            page.get_by_role("tab", name="Edit").click()
            rev = page.evaluate("window.__eie.state.rev")
            kept = counts(page)
            bad = tmp_path / "broken.png"
            bad.write_text("this is not an image")
            page.locator("#input-image input[type=file]").set_input_files(str(bad))
            expect(page.locator("#status")).to_contain_text("kept", timeout=30_000)
            text = page.locator("#status").inner_text()
            assert "broken.png is not an image (accepted: PNG, JPEG" in text and "Error" not in text
            assert counts(page)["deleted"] == kept["deleted"] and page.evaluate("window.__eie.state.rev") == rev
        finally:
            browser.close()


def expected_deleted(k: int, dx: float, dy: float) -> int:
    """Deleted count after one move of element k by (dx, dy) on the astronaut, computed without the app."""
    from elements import edit
    from elements.partition import Partitioner

    el = Partitioner("slic")(str(ROOT / "assets" / "astronaut.jpg"))
    return int((~edit.move(el, [k], dx, dy).active).sum())


def test_phone_layout_with_touch(url, artifacts):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            ctx = browser.new_context(
                viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2
            )
            page = ctx.new_page()
            page.goto(url, wait_until="domcontentloaded")
            expect(page.locator("#banner")).to_contain_text("Fast CPU mode", timeout=30_000)
            pick_example(page, 3, expect)  # the rocket, 640x427
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no horizontal scroll
            stage = page.locator("#canvas .eie-stage").bounding_box()
            assert (
                stage["width"] >= 340 and stage["y"] < page.locator("#input-image").bounding_box()["y"]
            )  # canvas first
            page.evaluate("document.querySelector('#canvas .eie-stage').scrollIntoView({block: 'start'})")
            a = page.evaluate(JS_ELEMENT, [])
            page.touchscreen.tap(*to_page(page, a["x"], a["y"]))
            assert selection(page) == {a["id"]}
            expect(page.locator("#status")).to_contain_text("1 selected", timeout=10_000)
            save_shot(page, artifacts, "canvas-selection-390.png")
            x, y = to_page(page, a["x"], a["y"])
            touch_drag(page, x, y, x - 40 if x > 195 else x + 40, y + 10)  # towards the middle: stays in the image
            expect(page.locator("#status")).to_contain_text("1 edited", timeout=30_000)
            move = page.evaluate("window.__eie.sent.filter((e) => e.type === 'move').at(-1)")
            assert move["ids"] == [a["id"]] and abs(move["dx"]) > 20
            page.locator("#canvas button[data-act=undo]").tap()
            expect(page.locator("#status")).to_contain_text("0 edited", timeout=30_000)
        finally:
            browser.close()


def touch_drag(page, x0, y0, x1, y1, steps=8):
    """A one-finger drag as touch pointer events at viewport px (Playwright's touchscreen only taps)."""
    page.evaluate(
        """([x0, y0, x1, y1, steps]) => {
      const st = document.querySelector('#canvas .eie-stage');
      const ev = (type, x, y) => st.dispatchEvent(new PointerEvent(type, {pointerId: 7, pointerType: 'touch', isPrimary: true,
        clientX: x, clientY: y, button: type === 'pointermove' ? -1 : 0, buttons: type === 'pointerup' ? 0 : 1, bubbles: true}));
      ev('pointerdown', x0, y0);
      for (let i = 1; i <= steps; i++) ev('pointermove', x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps);
      ev('pointerup', x1, y1);
    }""",
        [x0, y0, x1, y1, steps],
    )
