"""Why GMIC's ranking inverts under noise and patch shuffling: its perturbed score against breast area.

Usage (after ``mammo-robust run examples/gmic-demo-study.toml --run-id demo-study``)::

    python3 examples/analysis/noise_shuffle_inversion.py demo-study [--saliency]

Prints, per condition of the run (breast level): the AUC, the AUC of breast area alone, Spearman's rho
between score and breast area, and the AUC of what is left of the score once breast area is regressed out
(logit score on log area, fitted on the other breasts); with ``--saliency`` also where GMIC's malignant
saliency and its K regions lie under noise and shuffling, with the run's weights (every image of the
run's split, about a second each on 2 cores at 0.3 mm, ``demo-fast``; ~8 s at 0.1 mm). Breast area is the
count of non-zero pixels of the stored image times the pixel area. ``docs/demo-weights.md`` ("Noise and
shuffling invert the 0.3 mm GMIC's ranking: why") gives the numbers.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from core.imaging import load_mammogram
from core.metrics import auc, bootstrap_auc, validate_scores
from core.metrics.distributions import case_scores
from core.runs import RunStore
from core.runs.cohort import resolve_manifest


def breast_areas(manifest: pd.DataFrame) -> pd.DataFrame:
    """Per image: breast area in mm^2 (non-zero pixels of the stored image)."""
    rows = []
    for r in manifest.itertuples():
        mam = load_mammogram(r.path)
        px_mm2 = mam.spacing_mm[0] * mam.spacing_mm[1]
        rows.append((r.image_id, r.exam_id, r.laterality, float((mam.pixels > 0).sum() * px_mm2)))
    return pd.DataFrame(rows, columns=["image_id", "exam_id", "laterality", "area_mm2"])


def area_table(scores: pd.DataFrame, areas: pd.DataFrame) -> pd.DataFrame:
    """Per condition (breast level): AUC, AUC of area, rho(score, area), AUC of the area-free residual."""
    ba = areas.groupby(["exam_id", "laterality"])["area_mm2"].mean().rename("area").reset_index()
    br = case_scores(scores, level="breast").merge(ba, on=["exam_id", "laterality"])
    out = []
    for (pert, sev), d in br.groupby(["perturbation", "severity"], sort=False):
        y = d["label"].to_numpy()
        s = d["score"].clip(1e-6, 1 - 1e-6)
        logit, log_area, other = np.log(s / (1 - s)), np.log(d["area"]), y == 0
        k = np.polyfit(log_area[other], logit[other], 1)
        resid = bootstrap_auc(logit - np.polyval(k, log_area), y)
        est = bootstrap_auc(d["score"], y)
        out.append(
            dict(perturbation=pert, severity=sev, auc=est.auc, ci_low=est.ci_low, ci_high=est.ci_high,
                 auc_area=auc(d["area"], y), rho_area=spearmanr(d["score"], d["area"])[0],
                 auc_residual=resid.auc, residual_ci_low=resid.ci_low, residual_ci_high=resid.ci_high)
        )  # fmt: skip
    return pd.DataFrame(out)


def saliency_table(manifest: pd.DataFrame, findings: pd.DataFrame | None, weights: str) -> pd.DataFrame:
    """Per image and version (none, noise std 1600, shuffle 8 x 8 with the run's seeds): GMIC's malignant
    score, how many of its 4 highest saliency cells lie on the breast, and how many regions hit a finding."""
    from core.models import create_model
    from core.models.explain import explain_image
    from core.perturb import PreparedImage
    from core.runs.grid import image_seed

    model = create_model("gmic", weights=weights)
    rows = []
    for r in manifest.itertuples():
        mam = replace(load_mammogram(r.path, name=r.image_id), laterality=r.laterality, view=r.view)
        img, seed = PreparedImage(mam.pixels, mam.spacing_mm, workers=1), image_seed(0, r.image_id)
        versions = [("none", mam.pixels), ("noise", img.apply("noise", 1600.0, seed=seed)),
                    ("shuffle", img.apply("shuffle", 8, seed=seed))]  # fmt: skip
        exps = explain_image(model, mam, versions)
        frame = exps[0].frame
        h, w = exps[0].saliency.shape[1:]
        wh, ww = frame.window_shape
        rc, cc = np.meshgrid((np.arange(h) + 0.5) * wh / h, (np.arange(w) + 0.5) * ww / w, indexing="ij")
        ir, ic = frame.window_edges_to_image(rc.ravel(), cc.ravel())
        inside = (ir >= 0) & (ir < mam.pixels.shape[0]) & (ic >= 0) & (ic < mam.pixels.shape[1])
        breast = np.zeros(ir.size, bool)
        breast[inside] = mam.pixels[ir[inside].astype(int), ic[inside].astype(int)] > 0
        spots = findings[findings["image_id"] == r.image_id] if findings is not None else pd.DataFrame()
        for (version, _), e in zip(versions, exps, strict=True):
            top = np.argsort(e.saliency[1].ravel())[::-1][:4]
            hits = sum(
                any(
                    g.row <= q.row < g.row + g.height and g.col <= q.col < g.col + g.width
                    for q in spots.itertuples()
                )
                for g in e.regions
            )
            rows.append(
                dict(image_id=r.image_id, version=version, label=int(r.label_malignant), score=e.malignant,
                     top4_on_breast=int(breast[top].sum()), regions_on_finding=hits, findings=len(spots))
            )  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_id")
    ap.add_argument("--saliency", action="store_true")
    args = ap.parse_args()
    store = RunStore.open(args.run_id)
    manifest = resolve_manifest(store.config())
    scores = validate_scores(store.scores())
    table = area_table(scores, breast_areas(manifest))
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    if args.saliency:
        fpath = Path(manifest["path"].iloc[0]).parents[2] / "findings.csv"
        findings = None
        if fpath.is_file():
            findings = pd.read_csv(fpath, dtype={"exam_id": str})
            findings = findings[(findings["pathology"] == "malignant") & findings["part_of"].isna()]
        sal = saliency_table(manifest, findings, store.config().weights)
        with_finding = sal[sal["findings"] > 0]
        print(sal.groupby("version")[["score", "top4_on_breast"]].median())
        print("regions on a malignant finding, of", 4 * with_finding["image_id"].nunique(), ":")
        print(with_finding.groupby("version")["regions_on_finding"].sum())


if __name__ == "__main__":
    main()
