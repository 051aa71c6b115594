// The image lab's viewer, part 1 of 2 (explorer/ui/viewer.py joins viewer_draw.js and viewer.js into one
// module): decoding the packed tiles, colouring, view maths, the panels' DOM and drawing. Part 2, viewer.js,
// holds the interaction, the reports to Python and the entry point.
//
// A Streamlit components-v2 module (plain JavaScript, no build step, nothing loaded from the network).
// Python sends, for the view it last heard of, tiles of model-unit values (16-bit codes, zlib, base64;
// see core/viewport.py) and how to colour them; this module colours and draws them, zooms and pans all
// three image panels together (wheel, drag, double-click = native pixels), reads values under the pointer,
// and reports the view (debounced) with setStateValue("view", ...), upon which Python renders the
// visible window again from the full-resolution images. The view lives here and in Python's session
// state, so a control change (a rerun with new data) never resets it.

const INSTANCES = new Map();
// Decoded arrays by content id, for the whole page (a remount after navigation keeps them): Python sends
// an array's values once per session and afterwards only its id (explorer/ui/viewer.py, MAX_SENT < this).
const CACHE = new Map();
const CACHE_SIZE = 32;
const REPORT_DELAY_MS = 160;
const MIN_VIEW_PX = 8; // as core.viewport.MIN_VIEW_PX
const GAP = 10;

function bytesFromBase64(b64) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function decodeValues(packed) {
  const stream = new Blob([bytesFromBase64(packed.b64)]).stream().pipeThrough(new DecompressionStream("deflate"));
  const raw = await new Response(stream).arrayBuffer();
  const codes = new Uint16Array(raw);
  const values = new Float32Array(codes.length);
  const lo = packed.lo, step = packed.step;
  for (let i = 0; i < codes.length; i++) values[i] = lo + codes[i] * step;
  return { h: packed.shape[0], w: packed.shape[1], values };
}

function colourise(grid, style, palettes) {
  const { h, w, values } = grid;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const px = img.data;
  const n = values.length;
  if (style.kind === "grey") {
    const lo = style.window[0] - style.window[1] / 2, scale = 255 / style.window[1];
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      let g = (values[i] - lo) * scale;
      g = g < 0 ? 0 : g > 255 ? 255 : Math.floor(g);
      if (style.invert) g = 255 - g;
      px[j] = px[j + 1] = px[j + 2] = g;
      px[j + 3] = 255;
    }
  } else {
    const pal = palettes[style.kind];
    const diverging = style.kind === "diverging";
    const vmin = diverging ? -style.limit : style.vmin;
    const vmax = diverging ? style.limit : style.vmax;
    const scale = 255 / Math.max(vmax - vmin, 1e-12);
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      let k = (values[i] - vmin) * scale;
      k = k < 0 ? 0 : k > 255 ? 255 : Math.floor(k);
      px[j] = pal[3 * k];
      px[j + 1] = pal[3 * k + 1];
      px[j + 2] = pal[3 * k + 2];
      px[j + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// ------------------------------------------------------------------------------------------ view maths

function clampView(v, H, W) {
  const zmax = Math.max(1, Math.min(H, W) / MIN_VIEW_PX);
  const z = Math.min(Math.max(v.z, 1), zmax);
  const hh = H / z / 2, hw = W / z / 2;
  return { z, cy: Math.min(Math.max(v.cy, hh), H - hh), cx: Math.min(Math.max(v.cx, hw), W - hw) };
}

function viewRect(v, H, W) {
  const hh = H / v.z / 2, hw = W / v.z / 2;
  return { top: v.cy - hh, left: v.cx - hw, bottom: v.cy + hh, right: v.cx + hw };
}

function viewFromRect(r, H, W) {
  if (!r || !(r.bottom > r.top) || !(r.right > r.left)) return { z: 1, cy: H / 2, cx: W / 2 };
  const z = Math.min(H / (r.bottom - r.top), W / (r.right - r.left));
  return clampView({ z, cy: (r.top + r.bottom) / 2, cx: (r.left + r.right) / 2 }, H, W);
}

function fmt(v, digits = 1) {
  if (!Number.isFinite(v)) return "–";
  return v.toFixed(digits).replace("-", "−");
}

// ------------------------------------------------------------------------------------------ DOM

function buildDom(parent) {
  const root = document.createElement("div");
  root.className = "mre-viewer";
  root.innerHTML = `
    <div class="mre-toolbar">
      <button type="button" data-act="reset" title="Whole image in every panel">Reset view</button>
      <button type="button" data-act="native" title="One screen pixel per image pixel, around the centre of the view">1:1 native pixels</button>
      <span class="mre-res"></span>
    </div>
    <div class="mre-grid"></div>
    <div class="mre-warn" hidden></div>
    <div class="mre-readout">Wheel: zoom · drag: pan · double-click: native pixels there (spectrum: reset)</div>`;
  parent.appendChild(root);
  return root;
}

function ensurePanels(inst) {
  const grid = inst.root.querySelector(".mre-grid");
  const ids = inst.data.panels.map((p) => p.id).concat(["spectrum"]);
  if (inst.panelIds && inst.panelIds.join() === ids.join()) return;
  grid.innerHTML = "";
  inst.canvases = {};
  inst.titles = {};
  for (const id of ids) {
    const fig = document.createElement("figure");
    fig.className = "mre-panel";
    fig.dataset.panel = id;
    const title = document.createElement("figcaption");
    const canvas = document.createElement("canvas");
    canvas.dataset.panel = id;
    fig.appendChild(title);
    fig.appendChild(canvas);
    grid.appendChild(fig);
    inst.canvases[id] = canvas;
    inst.titles[id] = title;
  }
  inst.panelIds = ids;
}

function layout(inst) {
  const d = inst.data;
  const [H, W] = d.shape;
  const cols = d.layout === "grid" ? 2 : 4;
  let ch, cw;
  if (d.panel) {
    if (H >= W) { ch = d.panel; cw = Math.round((d.panel * W) / H); }
    else { cw = d.panel; ch = Math.round((d.panel * H) / W); }
  } else {
    const avail = Math.max(inst.root.clientWidth || 800, 200);
    cw = Math.max(80, Math.floor((avail - (cols - 1) * GAP) / cols));
    ch = Math.round((cw * H) / W);
    if (ch > 1600) { ch = 1600; cw = Math.round((ch * W) / H); }
  }
  const grid = inst.root.querySelector(".mre-grid");
  grid.style.gridTemplateColumns = `repeat(${cols}, ${cw}px)`;
  const dpr = window.devicePixelRatio || 1;
  for (const canvas of Object.values(inst.canvases)) {
    canvas.style.width = `${cw}px`;
    canvas.style.height = `${ch}px`;
    if (canvas.width !== Math.round(cw * dpr)) canvas.width = Math.round(cw * dpr);
    if (canvas.height !== Math.round(ch * dpr)) canvas.height = Math.round(ch * dpr);
  }
  inst.size = { ch, cw, dpr };
}

// ------------------------------------------------------------------------------------------ drawing

function drawImagePanel(inst, id) {
  const canvas = inst.canvases[id];
  const ctx = canvas.getContext("2d");
  const { ch, cw, dpr } = inst.size;
  const [H, W] = inst.data.shape;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, cw, ch);
  const tile = inst.tiles && inst.tiles.panels[id];
  if (!tile) return;
  const r = viewRect(inst.view, H, W);
  const sx = cw / (r.right - r.left), sy = ch / (r.bottom - r.top);
  const [r0, r1, c0, c1] = inst.tiles.bounds;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile.canvas, (c0 - r.left) * sx, (r0 - r.top) * sy, (c1 - c0) * sx, (r1 - r0) * sy);
}

function specGeometry(inst) {
  const s = inst.data.spectrum;
  const [fy0, fy1, fx0, fx1] = s.extent;
  const { ch, cw } = inst.size;
  const base = Math.min(cw / (fx1 - fx0), ch / (fy1 - fy0));
  const v = inst.specView;
  return { scale: base * v.z, cy: v.cy, cx: v.cx, fy0, fy1, fx0, fx1, ch, cw };
}

function drawSpectrum(inst) {
  const canvas = inst.canvases.spectrum;
  const ctx = canvas.getContext("2d");
  const { dpr } = inst.size;
  const g = specGeometry(inst);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, g.cw, g.ch);
  const tile = inst.tiles && inst.tiles.spectrum;
  if (!tile) return;
  const X = (f) => g.cw / 2 + (f - g.cx) * g.scale;
  const Y = (f) => g.ch / 2 + (f - g.cy) * g.scale;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile.canvas, X(g.fx0), Y(g.fy0), (g.fx1 - g.fx0) * g.scale, (g.fy1 - g.fy0) * g.scale);
  for (const c of inst.data.spectrum.circles) {
    ctx.beginPath();
    ctx.setLineDash(c.dash === "dot" ? [2, 4] : c.dash === "dash" ? [8, 5] : []);
    ctx.strokeStyle = c.color;
    ctx.lineWidth = c.width;
    ctx.arc(X(0), Y(0), c.r * g.scale, 0, 2 * Math.PI);
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function statusText(inst) {
  const d = inst.data;
  const [H, W] = d.shape;
  const [sr, sc] = d.spacing;
  const { dpr } = inst.size;
  const ch = inst.size.ch * dpr, cw = inst.size.cw * dpr; // device pixels: a screen pixel
  const r = viewRect(inst.view, H, W);
  const screenMm = Math.max(((r.bottom - r.top) * sr) / ch, ((r.right - r.left) * sc) / cw);
  const shownMm = Math.max(screenMm, Math.max(sr, sc));
  const fmax = 0.5 / shownMm;
  const perScreen = (r.bottom - r.top) / ch;
  const zoom = perScreen > 1 ? `${fmt(perScreen, 1)} image pixels per screen pixel` : `each image pixel ${fmt(1 / perScreen, 1)} screen pixels wide (native)`;
  const res = `View ×${fmt(inst.view.z, 2)}: ${screenMm.toPrecision(2)} mm per screen pixel (${zoom}); shows frequencies up to ${fmax.toPrecision(3)} cycles/mm`;
  let warn = "";
  if (d.radius && d.radius > fmax) {
    const what = d.perturbation === "highpass" ? "keeps" : "removes";
    const diff = d.diff_mode === "rms" ? "the difference panel shows it as its RMS over each screen pixel" : "the difference panel's RMS mode shows where it acts";
    warn = `R = ${d.radius} cycles/mm lies above the highest frequency this view shows (${fmax.toPrecision(3)}): the perturbed panel cannot show what R ${what}; ${diff}. Zoom in to see what R = ${d.radius} ${what} (double-click a spot for native pixels).`;
  }
  return { res, warn, fmax };
}

function redraw(inst) {
  if (!inst.size || !inst.canvases) return;
  for (const p of inst.data.panels) drawImagePanel(inst, p.id);
  drawSpectrum(inst);
  const { res, warn, fmax } = statusText(inst);
  inst.root.querySelector(".mre-res").textContent = res;
  const w = inst.root.querySelector(".mre-warn");
  w.hidden = !warn;
  w.textContent = warn;
  const stale = inst.tiles && !sameRect(inst.tiles.view, viewRect(inst.view, ...inst.data.shape));
  for (const p of inst.data.panels) inst.titles[p.id].textContent = p.title + (stale ? " (refining…)" : "");
  inst.titles.spectrum.textContent = inst.data.spectrum.title;
  inst.root.dataset.zoom = inst.view.z.toFixed(4);
  inst.root.dataset.fmax = fmax.toFixed(4);
}

function sameRect(a, b) {
  if (!a || !b) return false;
  return ["top", "left", "bottom", "right"].every((k) => Math.abs(a[k] - b[k]) < 0.5);
}

function scheduleRedraw(inst) {
  if (inst.frame) return;
  inst.frame = requestAnimationFrame(() => { inst.frame = 0; redraw(inst); });
}
