// The image lab's viewer, part 2 of 2 (after viewer_draw.js): interaction, reports to Python, entry point.

// ------------------------------------------------------------------------------------------ reporting

function report(inst, now = false, resend = false) {
  clearTimeout(inst.timer);
  const send = () => {
    const d = inst.data;
    const [H, W] = d.shape;
    const { ch, cw, dpr } = inst.size;
    const msg = {
      token: d.token,
      image: d.image_key,
      view: viewRect(inst.view, H, W),
      spec: inst.specView,
      screen: [Math.round(ch * dpr), Math.round(cw * dpr)],
    };
    if (resend) msg.resend = Date.now(); // always a new message
    const key = JSON.stringify(msg);
    if (key === inst.lastReport) return;
    inst.lastReport = key;
    inst.setStateValue("view", msg);
  };
  if (now) send();
  else inst.timer = setTimeout(send, REPORT_DELAY_MS);
}

function needsReport(inst) {
  // The screen size or view Python rendered for differs from ours: ask for a new tile.
  const d = inst.data;
  const { ch, cw, dpr } = inst.size;
  const screenDiffers = !d.screen || d.screen[0] !== Math.round(ch * dpr) || d.screen[1] !== Math.round(cw * dpr);
  return screenDiffers || !sameRect(d.rendered_view, viewRect(inst.view, ...d.shape));
}

// ------------------------------------------------------------------------------------------ readout

function readout(inst, id, mx, my) {
  const d = inst.data;
  const out = inst.root.querySelector(".mre-readout");
  const tiles = inst.tiles;
  if (!tiles) return;
  const { ch, cw } = inst.size;
  if (id === "spectrum") {
    const g = specGeometry(inst);
    const fx = g.cx + (mx - cw / 2) / g.scale, fy = g.cy + (my - ch / 2) / g.scale;
    const t = tiles.spectrum;
    const j = Math.floor(((fx - g.fx0) / (g.fx1 - g.fx0)) * t.w), i = Math.floor(((fy - g.fy0) / (g.fy1 - g.fy0)) * t.h);
    const inside = i >= 0 && j >= 0 && i < t.h && j < t.w;
    out.textContent = `f_x ${fmt(fx, 2)}, f_y ${fmt(fy, 2)} cycles/mm · |f| ${fmt(Math.hypot(fx, fy), 2)} cycles/mm` +
      (inside ? ` · log10 |F| ${fmt(t.values[i * t.w + j], 2)}` : "");
    return;
  }
  const [H, W] = d.shape;
  const [sr, sc] = d.spacing;
  const r = viewRect(inst.view, H, W);
  const row = r.top + (my / ch) * (r.bottom - r.top), col = r.left + (mx / cw) * (r.right - r.left);
  const [r0, r1, c0, c1] = tiles.bounds;
  let text = `y ${fmt(row * sr, 1)} mm, x ${fmt(col * sc, 1)} mm (row ${Math.floor(row)}, column ${Math.floor(col)})`;
  const some = tiles.panels.original;
  if (row >= r0 && row < r1 && col >= c0 && col < c1 && some) {
    const i = Math.min(some.h - 1, Math.floor(((row - r0) / (r1 - r0)) * some.h));
    const j = Math.min(some.w - 1, Math.floor(((col - c0) / (c1 - c0)) * some.w));
    const k = i * some.w + j;
    const a = tiles.panels.original.values[k], b = tiles.panels.perturbed.values[k];
    const diff = tiles.panels.difference;
    const fr = tiles.footprint[0], fc = tiles.footprint[1];
    const where = fr === 1 && fc === 1 ? "native pixel" : `mean over ${fmt(fr, 1)} × ${fmt(fc, 1)} image pixels`;
    text += ` · original ${fmt(a)} · perturbed ${fmt(b)} · difference ${fmt(b - a)}`;
    if (d.diff_mode === "rms") text += ` (RMS ${fmt(diff.values[k])})`;
    text += ` model units, ${where}`;
  }
  out.textContent = text;
}

// ------------------------------------------------------------------------------------------ interaction

function attach(inst) {
  // Listeners are attached once per viewer and read the latest data from `inst` when an event comes: a
  // re-render with new data must leave no moment without them (a wheel event would then scroll the page).
  const root = inst.root;
  const grid = root.querySelector(".mre-grid");
  const target = (e) => {
    const canvas = e.target && e.target.closest ? e.target.closest("canvas[data-panel]") : null;
    if (!canvas || !inst.size) return null;
    const b = canvas.getBoundingClientRect();
    return { canvas, id: canvas.dataset.panel, mx: e.clientX - b.left, my: e.clientY - b.top };
  };
  const imagePoint = (mx, my) => {
    const [H, W] = inst.data.shape;
    const { ch, cw } = inst.size;
    const r = viewRect(inst.view, H, W);
    return [r.top + (my / ch) * (r.bottom - r.top), r.left + (mx / cw) * (r.right - r.left)];
  };
  const zoomAt = (id, mx, my, factor) => {
    const [H, W] = inst.data.shape;
    const { ch, cw } = inst.size;
    if (id === "spectrum") {
      const g = specGeometry(inst);
      const fx = g.cx + (mx - cw / 2) / g.scale, fy = g.cy + (my - ch / 2) / g.scale;
      const z = Math.min(Math.max(inst.specView.z * factor, 1), 64);
      const s = (g.scale / inst.specView.z) * z;
      inst.specView = { z, cx: fx - (mx - cw / 2) / s, cy: fy - (my - ch / 2) / s };
    } else {
      const [row, col] = imagePoint(mx, my);
      const z = clampView({ z: inst.view.z * factor, cy: H / 2, cx: W / 2 }, H, W).z;
      inst.view = clampView({ z, cy: row - (my / ch - 0.5) * (H / z), cx: col - (mx / cw - 0.5) * (W / z) }, H, W);
    }
    scheduleRedraw(inst);
    report(inst);
  };
  grid.addEventListener("wheel", (e) => {
    const t = target(e);
    if (!t) return;
    e.preventDefault();
    zoomAt(t.id, t.mx, t.my, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
  let drag = null;
  grid.addEventListener("pointerdown", (e) => {
    const t = target(e);
    if (!t || e.button !== 0) return;
    t.canvas.setPointerCapture(e.pointerId);
    drag = { id: t.id, x: e.clientX, y: e.clientY, view: { ...inst.view }, spec: { ...inst.specView } };
  });
  grid.addEventListener("pointermove", (e) => {
    const t = target(e);
    if (drag) {
      const [H, W] = inst.data.shape;
      const { ch, cw } = inst.size;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.id === "spectrum") {
        const g = specGeometry(inst);
        inst.specView = { ...drag.spec, cx: drag.spec.cx - dx / g.scale, cy: drag.spec.cy - dy / g.scale };
      } else {
        const r = viewRect(drag.view, H, W);
        inst.view = clampView({ ...drag.view, cx: drag.view.cx - (dx / cw) * (r.right - r.left), cy: drag.view.cy - (dy / ch) * (r.bottom - r.top) }, H, W);
      }
      scheduleRedraw(inst);
    }
    if (t) readout(inst, t.id, t.mx, t.my);
  });
  const end = (e) => {
    if (!drag) return;
    drag = null;
    const c = e.target;
    if (c && c.hasPointerCapture && c.hasPointerCapture(e.pointerId)) c.releasePointerCapture(e.pointerId);
    report(inst);
  };
  grid.addEventListener("pointerup", end);
  grid.addEventListener("pointercancel", end);
  grid.addEventListener("dblclick", (e) => {
    const t = target(e);
    if (!t) return;
    const [H, W] = inst.data.shape;
    if (t.id === "spectrum") inst.specView = { z: 1, cy: 0, cx: 0 };
    else {
      const [row, col] = imagePoint(t.mx, t.my);
      inst.view = clampView({ z: H / (inst.size.ch * inst.size.dpr), cy: row, cx: col }, H, W);
    }
    scheduleRedraw(inst);
    report(inst, true);
  });
  root.querySelector(".mre-toolbar").addEventListener("click", (e) => {
    const act = e.target && e.target.dataset && e.target.dataset.act;
    if (!act || !inst.size) return;
    const [H, W] = inst.data.shape;
    if (act === "reset") {
      inst.view = { z: 1, cy: H / 2, cx: W / 2 };
      inst.specView = { z: 1, cy: 0, cx: 0 };
    } else if (act === "native") {
      inst.view = clampView({ z: H / (inst.size.ch * inst.size.dpr), cy: inst.view.cy, cx: inst.view.cx }, H, W);
    }
    scheduleRedraw(inst);
    report(inst, true);
  });
  if (window.ResizeObserver) {
    const ro = new ResizeObserver(() => {
      if (!root.isConnected) { ro.disconnect(); return; }
      const before = inst.size && `${inst.size.ch}x${inst.size.cw}`;
      layout(inst);
      if (`${inst.size.ch}x${inst.size.cw}` !== before) { scheduleRedraw(inst); report(inst); }
    });
    ro.observe(root);
  }
}

// ------------------------------------------------------------------------------------------ entry point

async function valuesFor(entry) {
  if (entry.values) {
    const grid = await decodeValues(entry.values);
    CACHE.delete(entry.key);
    CACHE.set(entry.key, grid);
    while (CACHE.size > CACHE_SIZE) CACHE.delete(CACHE.keys().next().value);
    return grid;
  }
  const grid = CACHE.get(entry.key);
  if (!grid) throw new Error(`missing ${entry.key}`);
  CACHE.delete(entry.key);
  CACHE.set(entry.key, grid);
  return grid;
}

async function loadTiles(inst, data, seq) {
  let decoded, spec;
  try {
    decoded = await Promise.all(data.panels.map(valuesFor));
    spec = await valuesFor(data.spectrum);
  } catch (err) {
    if (String(err).includes("missing")) { report(inst, true, true); return; }
    throw err;
  }
  if (seq !== inst.seq) return; // newer data arrived meanwhile
  const panels = {};
  data.panels.forEach((p, i) => { panels[p.id] = { ...decoded[i], canvas: colourise(decoded[i], p.style, data.palettes) }; });
  const spectrum = { ...spec, canvas: colourise(spec, data.spectrum.style, data.palettes) };
  inst.tiles = { panels, spectrum, bounds: data.tile.bounds, footprint: data.tile.footprint, view: data.rendered_view };
  redraw(inst);
  inst.root.dataset.stamp = data.stamp;
  inst.root.dataset.describe = data.describe;
  inst.root.dataset.arrived = String(inst.arrived); // performance.now() when this data came (benchmarks)
  inst.root.dataset.drawMs = (performance.now() - inst.arrived).toFixed(1);
}

export default function (component) {
  const { data, parentElement, setStateValue, key } = component;
  if (!data || !data.shape) return undefined;
  let inst = INSTANCES.get(key);
  let root = parentElement.querySelector(".mre-viewer");
  if (!root) root = buildDom(parentElement);
  if (!inst || inst.root !== root) {
    inst = { root, seq: 0 };
    INSTANCES.set(key, inst);
  }
  const [H, W] = data.shape;
  const adopt = inst.token !== data.token || inst.imageKey !== data.image_key || !inst.view;
  inst.data = data;
  inst.setStateValue = setStateValue;
  if (adopt) {
    inst.token = data.token;
    inst.imageKey = data.image_key;
    inst.view = viewFromRect(data.view, H, W);
    inst.specView = data.spec_view || { z: 1, cy: 0, cx: 0 };
    inst.tiles = null;
  }
  ensurePanels(inst);
  layout(inst);
  if (!inst.attached) {
    attach(inst);
    inst.attached = true;
  }
  inst.seq += 1;
  inst.arrived = performance.now();
  loadTiles(inst, data, inst.seq).catch((err) => {
    inst.root.querySelector(".mre-readout").textContent = `Could not draw the panels: ${err}`;
  });
  if (needsReport(inst)) report(inst);
  return undefined;
}
