"""Curves in physical units (core.metrics.curves), honest-number flags and notes, parameter metadata."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.metrics import auc_table, validate_scores
from core.metrics.context import ModelInput, ScoreContext, matched_std
from core.metrics.curves import auc_vs_parameter, panel_order
from core.metrics.flags import MIN_CASES, sample_flag, small_sample_warning, ties_note
from core.metrics.parameters import AXES, axis_for, checkpoint_of, is_unperturbed, natural_key
from tests.test_metrics_tables import make_scores

GRID = [
    ("none", 0, 0.0),
    ("lowpass", 1, 4.0),
    ("lowpass", 2, 2.0),
    ("lowpass", 4, 0.5),
    ("matched-lowpass", 2, 29000.0),
    ("highpass", 4, 2.0),
    ("matched-highpass", 4, 640000.0),
    ("noise", 5, 1600.0),
    ("noise", 1, 100.0),
]


@pytest.fixture(scope="module")
def aucs() -> pd.DataFrame:
    return auc_table(validate_scores(make_scores(n_exams=80, conditions=GRID)), n_resamples=200)


def test_curves_use_each_perturbation_parameter(aucs):
    ctx = ScoreContext(
        image_pixels=400_000.0, model_inputs={("gmic", "demo"): ModelInput(0.3, "demo: 0.3 mm")}
    )
    curves = auc_vs_parameter(aucs, context=ctx)
    br = curves[curves["level"] == "breast"]
    lp = br[(br["panel"] == "lowpass") & (br["kind"] == "perturbation")]
    assert list(lp["x"]) == [0.5, 2.0, 4.0]  # numeric order of R, not severity order
    assert set(br["panel"]) == {"lowpass", "highpass", "noise"}
    noise = br[(br["panel"] == "noise") & (br["kind"] == "perturbation")]
    assert list(noise["x"]) == [100.0, 1600.0]
    # The matched baseline sits at the radius it matches, with its std in model units.
    m = br[br["kind"] == "matched"].set_index("panel")
    assert m.loc["lowpass", "x"] == 2.0 and m.loc["highpass", "x"] == 2.0
    assert m.loc["lowpass", "matched_norm"] == 29000.0
    assert m.loc["lowpass", "matched_std"] == pytest.approx(29000.0 / math.sqrt(400_000.0))
    # The unperturbed AUC is a level (no x) in every panel of the series.
    un = br[br["kind"] == "unperturbed"]
    assert sorted(un["panel"]) == ["highpass", "lowpass", "noise"] and un["x"].isna().all()
    direct = aucs[(aucs["level"] == "breast") & (aucs["perturbation"] == "none")]["auc"].iloc[0]
    assert np.allclose(un["auc"], direct)
    # Nyquist of the model input on every row of the series.
    assert np.allclose(br["nyquist_mm"], 1 / 0.6)
    # Every point carries its case counts.
    assert (br["n_pos"] > 0).all() and (br["n_neg"] > br["n_pos"]).all()


def test_matched_std_unknown_without_image_size(aucs):
    curves = auc_vs_parameter(aucs)
    m = curves[curves["kind"] == "matched"]
    assert len(m) and m["matched_std"].isna().all() and m["nyquist_mm"].isna().all()
    assert math.isnan(matched_std(100.0, None))


def test_small_samples_are_flagged_and_warned():
    df = validate_scores(make_scores(n_exams=6, conditions=GRID[:3]))
    a = auc_table(df, n_resamples=200)
    assert (a["flag"].str.contains(f"< {MIN_CASES}")).all()
    curves = auc_vs_parameter(a)
    assert (curves["flag"] != "").all()
    text = small_sample_warning(a)
    assert text.startswith("Small samples") and f"fewer than {MIN_CASES}" in text
    # Large enough samples with narrow intervals carry no flag.
    big = auc_table(
        validate_scores(make_scores(n_exams=400, conditions=GRID[:2])), levels=["breast"], n_resamples=200
    )
    assert (big["flag"] == "").all() and small_sample_warning(big) == ""


def test_flag_and_ties_texts():
    assert sample_flag(40, 50, 0.7, 0.85) == ""
    assert sample_flag(40, 50, 0.5, 0.95) == "95% CI width 0.45 > 0.2"
    assert "n_pos 6 < 30" in sample_flag(6, 100)
    assert ties_note(np.array([0.2, 0.2]), np.array([0.2, 0.2, 0.2])).startswith("constant scores")
    assert "constant to within" in ties_note(np.array([0.2]), np.array([0.2 + 1e-9]))
    assert "tied" in ties_note(np.array([1.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0, 0.0]))
    assert ties_note(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.3])) == ""
    assert "exactly 0.5" in ties_note(np.array([0.1, 0.4]), np.array([0.2, 0.3]), 0.5)


def test_constant_scores_explain_a_baseline_of_one_half():
    df = make_scores(n_exams=60, conditions=[("none", 0, 0.0), ("matched-highpass", 4, 640000.0)])
    df.loc[df["perturbation"] == "matched-highpass", "score_malignant"] = 0.25
    a = auc_table(validate_scores(df), levels=["image"], n_resamples=0)
    row = a[a["perturbation"] == "matched-highpass"].iloc[0]
    assert row["auc"] == 0.5 and row["note"].startswith("constant scores")


def test_families_pool_seeds_and_keep_checkpoints_apart():
    df = make_scores(
        n_exams=40,
        conditions=GRID[:3],
        weights=("x-seed0", "x-seed1", "x-seed2", "g-epoch2.pt", "g-epoch10.pt"),
    )
    a = auc_table(validate_scores(df), levels=["breast"], n_resamples=0)
    curves = auc_vs_parameter(a)
    fam = curves[curves["weights"] == "x"]
    assert (fam["n_members"] == 3).all() and fam["band"].str.startswith("min-max over 3").all()
    members = a[a["weights"].str.startswith("x-") & (a["perturbation"] == "lowpass") & (a["severity"] == 1)]
    row = fam[(fam["panel"] == "lowpass") & (fam["x"] == 4.0)].iloc[0]
    assert row["auc"] == pytest.approx(members["auc"].mean())
    assert row["band_low"] == pytest.approx(members["auc"].min())
    ck = curves.dropna(subset=["epoch"]).drop_duplicates("weights")
    assert sorted(ck["epoch"]) == [2, 10] and set(ck["weights"]) == {"g-epoch2.pt", "g-epoch10.pt"}
    per_weights = auc_vs_parameter(a, group="weights")
    assert {"x-seed0", "x-seed1", "x-seed2"} <= set(per_weights["weights"])


def test_checkpoint_colours_ramp_within_a_run_and_differ_between_runs():
    from core.metrics.curve_figures import series_colors

    weights = ("g-epoch2.pt", "g-epoch10.pt", "clean-epoch06.pt", "lowpass-epoch06.pt")
    df = make_scores(n_exams=30, conditions=GRID[:3], weights=weights)
    aucs = auc_table(validate_scores(df), levels=["image"], n_resamples=0)
    curves = auc_vs_parameter(aucs, group="weights")
    colors = series_colors(curves)
    by_weights = dict(zip(curves["weights"], curves["series"], strict=False))
    ramp = {colors[by_weights["g-epoch2.pt"]], colors[by_weights["g-epoch10.pt"]]}
    single = [colors[by_weights["clean-epoch06.pt"]], colors[by_weights["lowpass-epoch06.pt"]]]
    assert len(ramp) == 2 and single[0] != single[1] and not ramp & set(single)


def test_parameter_metadata_matches_the_registry():
    from core.perturb import PERTURBATIONS

    for name, pert in PERTURBATIONS.items():
        axis = AXES[name]
        assert axis.unit.split()[0] in pert.unit or pert.unit.split()[0] in axis.unit, name
        assert axis.study_value in pert.grid.values(), name
    assert axis_for("matched-lowpass") is AXES["lowpass"]
    assert axis_for("blur").label == "parameter" and not axis_for("blur").log
    assert "not cycles/mm" in axis_for("lowpass-gaussian").label
    assert panel_order(["shuffle", "blur", "noise", "lowpass"]) == ["lowpass", "noise", "shuffle", "blur"]


def test_naming_helpers():
    assert checkpoint_of("gmic-lowpass2-epoch03.pt") == ("gmic-lowpass2", 3)
    assert checkpoint_of("run_epoch12") == ("run", 12)
    assert checkpoint_of("demo") is None and checkpoint_of("nyu-trained-filtered-seed0") is None
    assert sorted(["s10", "s2", "s1"], key=natural_key) == ["s1", "s2", "s10"]
    assert is_unperturbed("none", 0) and is_unperturbed("lowpass-gaussian", 0)
    assert not is_unperturbed("lowpass", 2)
