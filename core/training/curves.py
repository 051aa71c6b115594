"""Training curves: the per-epoch history as CSV and a two-panel PNG (loss, validation AUC), drawn
with Pillow."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def write_curves(history: list[dict[str, Any]], csv_path: Path, png_path: Path, title: str) -> Path | None:
    """The history as CSV and a PNG plot; the PNG's path, or None when it could not be drawn."""
    keys = list(history[0]) if history else ["epoch"]
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    try:
        plot_curves(history, png_path, title)
    except Exception as exc:  # a missing font etc. must not lose the trained weights
        print(f"could not draw {png_path}: {exc}")
        return None
    return png_path


def plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Two panels drawn with Pillow: training loss, and validation malignant AUC, against epoch."""
    from PIL import Image, ImageDraw

    W, H, pad = 900, 380, 55
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((pad, 8), title, fill="black")
    epochs = [h["epoch"] for h in history]
    panels = [
        ("train loss", "train_loss", None, "tab:blue"),
        ("val malignant AUC", "val_auc", (0.0, 1.0), "red"),
    ]
    pw = (W - 3 * pad) // 2
    for k, (label, key, yr, colour) in enumerate(panels):
        x0, y0, x1, y1 = pad + k * (pw + pad), 40, pad + k * (pw + pad) + pw, H - 40
        d.rectangle([x0, y0, x1, y1], outline="black")
        vals = [h.get(key) for h in history]
        pts = [(e, v) for e, v in zip(epochs, vals, strict=True) if v is not None and v == v]
        lo, hi = yr if yr else (min(v for _, v in pts), max(v for _, v in pts)) if pts else (0, 1)
        if hi <= lo:
            hi = lo + 1
        emax = max(max(epochs, default=1), 1)
        d.text((x0, y1 + 6), f"epoch 0..{emax}", fill="black")
        d.text((x0 + 4, y0 + 4), f"{label}  [{lo:.3g}, {hi:.3g}]", fill="black")
        xy = [(x0 + (x1 - x0) * e / emax, y1 - (y1 - y0) * (v - lo) / (hi - lo)) for e, v in pts]
        if len(xy) > 1:
            d.line(xy, fill="blue" if colour == "tab:blue" else "red", width=2)
        for x, y in xy:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill="black")
        if yr:
            for t in (0.5, 0.85):
                yy = y1 - (y1 - y0) * (t - lo) / (hi - lo)
                d.line([(x0, yy), (x1, yy)], fill=(200, 200, 200))
                d.text((x1 - 30, yy - 12), f"{t}", fill=(120, 120, 120))
    img.save(path)
