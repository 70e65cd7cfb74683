// The demo's direct-manipulation canvas: the body of gr.HTML's js_on_load.
// Gradio calls it once with (element, trigger, props, server, upload, watch).
//
// The server sends props.value (elements/ui/canvas.py, canvas_value): the pixel-edit preview
// as an image, the label map of the shown elements (run-length encoded, at the image's size),
// current centroids, edited ids, the selection and the last event number it has seen. Everything
// drawn here (boundaries, selection tint + outline, edited tint, hover, drag ghost, marquee)
// comes from those, at the screen's resolution, so lines stay crisp at any zoom.
//
// Every gesture becomes ONE small JSON event, trigger("gesture", {...}); Python turns it into
// one spec edit (elements/ui/handlers.py, on_gesture). Coordinates and offsets sent are input
// pixels (origin top-left). The selection is shown at once here and mirrored to the server.

const root = element.querySelector(".eie-canvas");
const stage = root.querySelector(".eie-stage");
const photoC = root.querySelector("canvas.eie-photo");
const marksC = root.querySelector("canvas.eie-marks");
const empty = root.querySelector(".eie-empty");
const hint = root.querySelector(".eie-hint");
const photoX = photoC.getContext("2d");
const marksX = marksC.getContext("2d");

const DRAG_START_PX = 5;  // CSS px a pointer must travel before a press becomes a drag
const HINTS = {
  select: "Click to select · Shift/Alt+click add/subtract · drag the selection to move · drag elsewhere to box-select",
  object: "Object (SAM): click a point · drag a box · Alt+click a negative point · Shift adds to the selection",
  place: "Click where the picked elements of the second image should go",
};

const S = {
  rev: null, w: 0, h: 0, k: 1,           // image size (px) and input px per image px
  img: null, labels: null, pixels: null,  // HTMLImageElement, Int32Array(w*h), ImageData (for the ghost)
  centroids: [], edited: new Uint8Array(0), n: 0,
  sel: new Set(), seq: 0, hover: -1, mode: "select",
  zoom: 1, ox: 0, oy: 0, fit: 1, cssW: 0, cssH: 0, dpr: 1,
  g: null,                                // the gesture in progress
  pointers: new Map(), pinch: null, space: false,
  pending: null,                          // a move sent and not yet answered: its ghost stays
  frame: 0,
};
const timings = { select: [], drag: [] };  // ms, read by bench/canvas.py
const sent = [];  // every event sent, for tests and benchmarks
window.__eie = { timings, state: S, sent, render: () => render() };

// --- value from the server ---------------------------------------------------------------------
function decodeRuns(b64, size) {  // base64 of int32 little-endian (id, run) pairs -> Int32Array(size)
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const runs = new Int32Array(bytes.buffer), out = new Int32Array(size);
  let p = 0;
  for (let i = 0; i < runs.length; i += 2) {
    out.fill(runs[i], p, p + runs[i + 1]);
    p += runs[i + 1];
  }
  return out;
}

async function onValue() {
  const v = props.value;
  if (!v || typeof v !== "object" || !v.w) {
    S.rev = null; S.img = null; S.labels = null; S.sel = new Set(); S.pending = null;
    empty.style.display = "flex";
    layout(); render();
    return;
  }
  empty.style.display = "none";
  if (v.image && v.rev !== S.rev) {
    const img = new Image();
    img.src = v.image;
    try { await img.decode(); } catch (e) { console.error("canvas: image did not decode", e); return; }
    const resized = v.w !== S.w || v.h !== S.h;
    S.img = img; S.w = v.w; S.h = v.h; S.rev = v.rev;
    S.labels = decodeRuns(v.labels, v.w * v.h);
    S.pixels = null;
    if (resized) { S.zoom = 1; S.ox = 0; S.oy = 0; }
  }
  S.k = v.input_w / v.w;
  S.centroids = v.centroids || [];
  S.n = S.centroids.length;
  S.edited = new Uint8Array(S.n + 1);
  for (const i of v.edited || []) S.edited[i] = 1;
  if ((v.seq || 0) >= S.seq) S.sel = new Set(v.selection || []);  // else a newer local change is in flight
  for (const b of root.querySelectorAll("button.eie-object")) b.hidden = !v.object;
  for (const b of root.querySelectorAll("button.eie-place")) b.hidden = !v.place;
  if ((S.mode === "object" && !v.object) || (S.mode === "place" && !v.place)) setMode("select");
  const pending = S.pending;
  if (pending && (v.seq || 0) >= pending.seq) S.pending = null;
  layout(); render();
  if (pending && !S.pending && pending.kind === "move") {
    requestAnimationFrame(() => timings.drag.push(performance.now() - pending.t0));
  }
}
watch("value", onValue);

// --- geometry ----------------------------------------------------------------------------------
function layout() {
  const cw = stage.parentElement.clientWidth || root.clientWidth || 300;
  const w = S.w || 4, h = S.h || 3;
  // the whole image and the toolbar under it fit in the window (one screen at 1280x800)
  const top = stage.getBoundingClientRect().top + window.scrollY;
  const maxH = Math.max(240, window.innerHeight - Math.min(top, 260) - 64);
  S.fit = Math.min(cw / w, maxH / h);
  S.cssW = Math.round(w * S.fit);
  S.cssH = Math.round(h * S.fit);
  S.dpr = Math.min(window.devicePixelRatio || 1, 2);
  stage.style.width = S.cssW + "px";
  stage.style.height = S.cssH + "px";
  for (const c of [photoC, marksC]) {
    const W = Math.round(S.cssW * S.dpr), H = Math.round(S.cssH * S.dpr);
    if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    c.style.width = S.cssW + "px";
    c.style.height = S.cssH + "px";
  }
  clampPan();
}

function scale() { return S.fit * S.zoom; }  // CSS px per image px

function clampPan() {
  const s = scale();
  S.ox = Math.min(0, Math.max(S.cssW - S.w * s, S.ox));
  S.oy = Math.min(0, Math.max(S.cssH - S.h * s, S.oy));
}

function toImage(ev) {  // pointer -> image px (float)
  const r = stage.getBoundingClientRect();
  const s = scale();
  return { x: (ev.clientX - r.left - S.ox) / s, y: (ev.clientY - r.top - S.oy) / s, cx: ev.clientX - r.left, cy: ev.clientY - r.top };
}

function labelAt(p) {
  if (!S.labels) return -1;
  const x = Math.floor(p.x), y = Math.floor(p.y);
  if (x < 0 || y < 0 || x >= S.w || y >= S.h) return -1;
  return S.labels[y * S.w + x];
}

// --- drawing -----------------------------------------------------------------------------------
function requestRender() {
  if (!S.frame) S.frame = requestAnimationFrame(() => { S.frame = 0; render(); });
}

function rgba(r, g, b, a) { return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0; }
const C_EDGE = rgba(255, 255, 255, 150), C_SEL = rgba(255, 40, 40, 100), C_SEL_LINE = rgba(255, 40, 40, 255);
const C_EDIT = rgba(40, 220, 40, 70), C_HOVER = rgba(255, 255, 255, 80), C_HOVER_SEL = rgba(255, 90, 90, 150);

function render() {
  const W = photoC.width, H = photoC.height, d = S.dpr, s = scale();
  photoX.setTransform(1, 0, 0, 1, 0, 0);
  photoX.clearRect(0, 0, W, H);
  marksX.setTransform(1, 0, 0, 1, 0, 0);
  marksX.clearRect(0, 0, W, H);
  if (!S.img || !S.labels) return;
  photoX.imageSmoothingEnabled = s * d < 1;  // upscaled images stay crisp
  photoX.setTransform(s * d, 0, 0, s * d, S.ox * d, S.oy * d);
  photoX.drawImage(S.img, 0, 0);

  // per screen pixel: which element it shows, then the marks
  if (!S.buf || S.buf.W !== W || S.buf.H !== H) {
    S.buf = { W, H, xs: new Int32Array(W), ys: new Int32Array(H), lab: new Int32Array(W * H), isSel: new Uint8Array(W * H),
              out: new ImageData(W, H) };
  }
  const { xs, ys, lab, isSel, out } = S.buf;
  for (let X = 0; X < W; X++) { const x = Math.floor(((X + 0.5) / d - S.ox) / s); xs[X] = x >= 0 && x < S.w ? x : -1; }
  for (let Y = 0; Y < H; Y++) { const y = Math.floor(((Y + 0.5) / d - S.oy) / s); ys[Y] = y >= 0 && y < S.h ? y : -1; }
  lab.fill(-1);
  for (let Y = 0; Y < H; Y++) {
    const y = ys[Y];
    if (y < 0) continue;
    const row = y * S.w, o = Y * W;
    for (let X = 0; X < W; X++) if (xs[X] >= 0) lab[o + X] = S.labels[row + xs[X]];
  }
  const selFlag = new Uint8Array(S.n + 2);
  for (const i of S.sel) if (i >= 0 && i <= S.n) selFlag[i] = 1;
  for (let i = 0; i < lab.length; i++) isSel[i] = lab[i] >= 0 && selFlag[lab[i]] ? 1 : 0;
  const px = new Uint32Array(out.data.buffer);
  px.fill(0);
  const t = Math.max(1, Math.round(d * 1.5));  // selection outline width, screen px
  for (let Y = 0; Y < H; Y++) {
    for (let X = 0; X < W; X++) {
      const i = Y * W + X, l = lab[i];
      if (l < 0) continue;
      let c = 0;
      if (isSel[i]) {
        c = l === S.hover ? C_HOVER_SEL : C_SEL;
        for (let k = 1; k <= t && c !== C_SEL_LINE; k++) {
          if (X < k || X >= W - k || Y < k || Y >= H - k || !isSel[i - k] || !isSel[i + k] || !isSel[i - k * W] || !isSel[i + k * W]) c = C_SEL_LINE;
        }
      } else if (l === S.hover) c = C_HOVER;
      else if (S.edited[l]) c = C_EDIT;
      if (c !== C_SEL_LINE && ((X + 1 < W && lab[i + 1] !== l) || (Y + 1 < H && lab[i + W] !== l))) c = C_EDGE;
      if (c) px[i] = c;
    }
  }
  marksX.putImageData(out, 0, 0);

  const g = S.g && S.g.kind === "move" ? S.g : S.pending;
  if (g && g.kind === "move") drawGhost(g.dx, g.dy);
  if (S.g && S.g.kind === "box") {
    const b = S.g, x0 = Math.min(b.x0, b.x1), y0 = Math.min(b.y0, b.y1);
    const bw = Math.abs(b.x1 - b.x0), bh = Math.abs(b.y1 - b.y0);
    marksX.setTransform(s * d, 0, 0, s * d, S.ox * d, S.oy * d);
    marksX.fillStyle = "rgba(59,130,246,0.15)";
    marksX.fillRect(x0, y0, bw, bh);
    marksX.lineWidth = 1.5 / s;
    marksX.setLineDash([6 / s, 4 / s]);
    marksX.strokeStyle = S.mode === "object" ? "#facc15" : "#3b82f6";
    marksX.strokeRect(x0, y0, bw, bh);
    marksX.setLineDash([]);
  }
}

function ghostCanvas() {  // the selection's pixels on a transparent canvas at the image's size
  if (!S.pixels) {
    const c = document.createElement("canvas");
    c.width = S.w; c.height = S.h;
    const x = c.getContext("2d", { willReadFrequently: true });
    x.drawImage(S.img, 0, 0);
    S.pixels = x.getImageData(0, 0, S.w, S.h);
  }
  const src = S.pixels.data, img = new ImageData(S.w, S.h), dst = img.data;
  const flag = new Uint8Array(S.n + 2);
  for (const i of S.sel) if (i >= 0 && i <= S.n) flag[i] = 1;
  for (let i = 0, n = S.w * S.h; i < n; i++) {
    const l = S.labels[i];
    if (l >= 0 && flag[l]) {
      dst[4 * i] = src[4 * i]; dst[4 * i + 1] = src[4 * i + 1]; dst[4 * i + 2] = src[4 * i + 2]; dst[4 * i + 3] = 255;
    }
  }
  const c = document.createElement("canvas");
  c.width = S.w; c.height = S.h;
  c.getContext("2d").putImageData(img, 0, 0);
  return c;
}

function drawGhost(dx, dy) {
  const g = S.g && S.g.kind === "move" ? S.g : S.pending;
  if (!g.ghost) return;
  const s = scale(), d = S.dpr;
  marksX.setTransform(s * d, 0, 0, s * d, (S.ox + dx * s) * d, (S.oy + dy * s) * d);
  marksX.imageSmoothingEnabled = s * d < 1;
  marksX.globalAlpha = 0.7;
  marksX.drawImage(g.ghost, 0, 0);
  marksX.globalAlpha = 1;
}

// --- events to the server ----------------------------------------------------------------------
function send(payload) {
  S.seq += 1;
  payload.seq = S.seq;
  sent.push(payload);
  trigger("gesture", payload);
  return S.seq;
}

function setSelection(ids, t0) {
  S.sel = new Set(ids);
  render();
  const payload = { type: "selection", ids: [...S.sel].sort((a, b) => a - b) };
  requestAnimationFrame(() => {  // draw first, tell the server after the frame
    if (t0 !== undefined) timings.select.push(performance.now() - t0);
    setTimeout(() => send(payload), 0);
  });
}

function idsInBox(b) {  // elements whose current centre lies in the box (the spec's "rect" rule)
  const x0 = Math.min(b.x0, b.x1), x1 = Math.max(b.x0, b.x1), y0 = Math.min(b.y0, b.y1), y1 = Math.max(b.y0, b.y1);
  const present = new Uint8Array(S.n + 1);
  for (let i = 0; i < S.labels.length; i++) if (S.labels[i] >= 0) present[S.labels[i]] = 1;
  const out = [];
  S.centroids.forEach((c, i) => {
    if (c && present[i] && c[0] >= x0 && c[0] <= x1 && c[1] >= y0 && c[1] <= y1) out.push(i);
  });
  return out;
}

function input(v) { return Math.round(v * S.k * 100) / 100; }  // image px -> input px

// --- pointer gestures ---------------------------------------------------------------------------
function startPinch() {
  const [a, b] = [...S.pointers.values()];
  S.pinch = { d: Math.hypot(a.x - b.x, a.y - b.y), mx: (a.x + b.x) / 2, my: (a.y + b.y) / 2 };
}

stage.addEventListener("pointerdown", (ev) => {
  if (!S.labels) return;
  stage.focus({ preventScroll: true });
  try { stage.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic or already released pointer */ }
  const r = stage.getBoundingClientRect();
  S.pointers.set(ev.pointerId, { x: ev.clientX - r.left, y: ev.clientY - r.top });
  if (S.pointers.size === 2) {  // second finger: the gesture becomes pinch-zoom + pan
    S.g = null; S.pending = null; startPinch(); render();
    return;
  }
  if (S.pointers.size > 2) return;
  const p = toImage(ev);
  if (ev.button === 1 || S.space) { S.g = { kind: "pan", cx: p.cx, cy: p.cy }; stage.classList.add("eie-panning"); return; }
  if (ev.button !== 0) return;
  const id = labelAt(p), mods = { shift: ev.shiftKey, alt: ev.altKey };
  if (S.mode === "select" && id >= 0 && S.sel.has(id) && !ev.shiftKey && !ev.altKey) S.g = { kind: "press-sel", id, p, ...mods };
  else S.g = { kind: "press", id, p, ...mods };
  ev.preventDefault();
});

stage.addEventListener("pointermove", (ev) => {
  const r = stage.getBoundingClientRect();
  if (S.pointers.has(ev.pointerId)) S.pointers.set(ev.pointerId, { x: ev.clientX - r.left, y: ev.clientY - r.top });
  if (S.pinch && S.pointers.size === 2) {
    const [a, b] = [...S.pointers.values()];
    const dist = Math.hypot(a.x - b.x, a.y - b.y), mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
    zoomAt(S.pinch.mx, S.pinch.my, dist / Math.max(S.pinch.d, 1));
    S.ox += mx - S.pinch.mx; S.oy += my - S.pinch.my;
    clampPan();
    S.pinch = { d: dist, mx, my };
    requestRender();
    return;
  }
  const p = toImage(ev);
  const g = S.g;
  if (!g) {  // hover highlight (mouse and pen only)
    const id = ev.pointerType === "touch" ? -1 : labelAt(p);
    stage.classList.toggle("eie-over-selection", S.mode === "select" && S.sel.has(id));
    if (id !== S.hover) { S.hover = id; requestRender(); }
    return;
  }
  if (g.kind === "pan") {
    S.ox += p.cx - g.cx; S.oy += p.cy - g.cy; g.cx = p.cx; g.cy = p.cy;
    clampPan(); requestRender();
    return;
  }
  if (g.kind === "press-sel" || g.kind === "press") {
    const far = Math.hypot((p.x - g.p.x) * scale(), (p.y - g.p.y) * scale()) >= DRAG_START_PX;
    if (g.kind === "press-sel" && far) S.g = { kind: "move", p0: g.p, dx: 0, dy: 0, ghost: ghostCanvas() };
    else if (g.kind === "press" && far && S.mode !== "place") S.g = { kind: "box", x0: g.p.x, y0: g.p.y, x1: p.x, y1: p.y, shift: g.shift, alt: g.alt };
  }
  if (S.g.kind === "move") { S.g.dx = p.x - S.g.p0.x; S.g.dy = p.y - S.g.p0.y; requestRender(); }
  if (S.g.kind === "box") { S.g.x1 = p.x; S.g.y1 = p.y; requestRender(); }
});

function endPointer(ev, cancelled) {
  S.pointers.delete(ev.pointerId);
  if (S.pinch) { if (S.pointers.size < 2) S.pinch = null; S.g = null; return; }
  const g = S.g;
  S.g = null;
  stage.classList.remove("eie-panning");
  if (!g || cancelled) { render(); return; }
  const t0 = performance.now();
  if (g.kind === "move") {
    const dx = input(g.dx), dy = input(g.dy);
    if (dx === 0 && dy === 0) { render(); return; }
    const seq = send({ type: "move", ids: [...S.sel].sort((a, b) => a - b), dx, dy });
    S.pending = { kind: "move", dx: g.dx, dy: g.dy, ghost: g.ghost, seq, t0 };
    setTimeout(() => { if (S.pending && S.pending.seq === seq) { S.pending = null; render(); } }, 15000);
    render();
  } else if (g.kind === "box") {
    const box = [g.x0, g.y0, g.x1, g.y1].map(input);
    if (S.mode === "object") { send({ type: "object", box: [Math.min(box[0], box[2]), Math.min(box[1], box[3]), Math.max(box[0], box[2]), Math.max(box[1], box[3])], add: g.shift }); render(); return; }
    const inside = idsInBox(g);
    const sel = new Set(g.shift || g.alt ? S.sel : []);
    for (const i of inside) { if (g.alt) sel.delete(i); else sel.add(i); }
    setSelection([...sel], t0);
  } else if (S.mode === "object") {
    send({ type: "object", points: [[input(g.p.x), input(g.p.y), !g.alt]], add: g.shift });
  } else if (S.mode === "place") {
    send({ type: "place", x: input(g.p.x), y: input(g.p.y) });
  } else if (g.id >= 0) {  // a click: toggle; Shift adds, Alt subtracts
    const sel = new Set(S.sel);
    if (g.shift) sel.add(g.id);
    else if (g.alt) sel.delete(g.id);
    else if (sel.has(g.id)) sel.delete(g.id);
    else sel.add(g.id);
    setSelection([...sel], t0);
  }
}
stage.addEventListener("pointerup", (ev) => endPointer(ev, false));
stage.addEventListener("pointercancel", (ev) => endPointer(ev, true));
stage.addEventListener("pointerleave", () => { if (!S.g && S.hover !== -1) { S.hover = -1; requestRender(); } });

function zoomAt(cx, cy, factor) {
  const s0 = scale();
  S.zoom = Math.min(16, Math.max(1, S.zoom * factor));
  const s1 = scale();
  S.ox = cx - (cx - S.ox) * (s1 / s0);
  S.oy = cy - (cy - S.oy) * (s1 / s0);
  clampPan();
}

stage.addEventListener("wheel", (ev) => {
  if (!S.labels) return;
  ev.preventDefault();
  const r = stage.getBoundingClientRect();
  zoomAt(ev.clientX - r.left, ev.clientY - r.top, Math.exp(-ev.deltaY * 0.0015));
  requestRender();
}, { passive: false });

// --- keys and toolbar ---------------------------------------------------------------------------
function typing(t) { return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)); }

function act(name) {
  if (!S.labels) return;
  const ids = [...S.sel].sort((a, b) => a - b);
  if (name === "undo" || name === "redo") send({ type: name });
  else if (name === "delete" && ids.length) { send({ type: "delete", ids }); S.sel = new Set(); render(); }
  else if (name === "clear") setSelection([]);
  else if (name === "fit") { S.zoom = 1; S.ox = 0; S.oy = 0; render(); }
}

function setMode(mode) {
  S.mode = mode;
  root.dataset.mode = mode;
  for (const b of root.querySelectorAll("button[data-act=mode]")) b.classList.toggle("eie-on", b.dataset.mode === mode);
  hint.textContent = HINTS[mode];
  if (S.labels) send({ type: "mode", mode });  // a new object prompt starts with each mode change
}

root.querySelector(".eie-toolbar").addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.act === "mode") setMode(b.dataset.mode);
  else act(b.dataset.act);
});

document.addEventListener("keydown", (ev) => {
  if (!root.isConnected || !S.labels || typing(ev.target)) return;
  const mod = ev.ctrlKey || ev.metaKey;
  if (ev.key === " ") { S.space = true; if (ev.target === stage) ev.preventDefault(); return; }
  if (mod && (ev.key === "z" || ev.key === "Z")) { act(ev.shiftKey ? "redo" : "undo"); ev.preventDefault(); return; }
  if (mod && (ev.key === "y" || ev.key === "Y")) { act("redo"); ev.preventDefault(); return; }
  if (mod || ev.altKey) return;
  if (ev.key === "Delete" || ev.key === "Backspace") { if (S.sel.size) { act("delete"); ev.preventDefault(); } return; }
  if (ev.key === "Escape") { if (S.sel.size) setSelection([]); return; }
  const step = ev.shiftKey ? 10 : 1;
  const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (arrows[ev.key] && S.sel.size) {  // nudges of one selection coalesce into one run (docs/canvas.md)
    send({ type: "move", ids: [...S.sel].sort((a, b) => a - b), dx: arrows[ev.key][0], dy: arrows[ev.key][1] });
    ev.preventDefault();
  }
});
document.addEventListener("keyup", (ev) => { if (ev.key === " ") S.space = false; });

new ResizeObserver(() => { layout(); requestRender(); }).observe(stage.parentElement);
setMode("select");
onValue();
