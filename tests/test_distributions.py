"""Score distributions of malignant and other cases per condition (``core.metrics.distributions``,
``mammo-robust distributions``), on a real run of the fast demo GMIC (0.3 mm) over the tiny cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.cli import main
from core.errors import MetricsError
from core.metrics import auc, auc_table, breast_level, validate_scores
from core.metrics.distribution_report import choose_scale, write_distributions
from core.metrics.distributions import (
    NO_FINDING,
    OTHER,
    breast_findings,
    case_scores,
    class_distributions,
    condition_label,
    select_conditions,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_torch_thread):
    """A finished run: the fast demo GMIC on every image of the tiny cohort, unperturbed and under noise."""
    from core.phantom import ensure_cohort
    from core.runs import RunConfig, create_run, execute_run, load_scores

    folder = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAMMO_ROBUST_DATA", str(folder))
        manifest = ensure_cohort("tiny")
        cfg = RunConfig(
            model="gmic", manifest="tiny", weights="demo-fast", device="cpu", perturbations={"noise": [5]},
            matched_baseline=False, batch_size=8,
        )  # fmt: skip
        run_id = create_run(cfg, "tiny-noise")
        assert execute_run(run_id) == "done"
        scores = validate_scores(load_scores(run_id))
        yield {"run_id": run_id, "scores": scores, "findings": manifest.parent / "findings.csv"}


def _lowered(scores: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """The run's scores plus a condition made of its real unperturbed scores with every malignant breast's
    image scores multiplied by ``k``, small enough to put them all below every other breast."""
    none = scores[scores["perturbation"] == "none"]
    br = breast_level(none)
    k = 0.5 * br.loc[br["label_malignant"] == 0, "score_malignant"].min()
    k /= br.loc[br["label_malignant"] == 1, "score_malignant"].max()
    low = none.assign(perturbation="shuffle", severity=5, parameter=8.0)
    malignant_breast = low.groupby(["exam_id", "laterality"])["label_malignant"].transform("max") == 1
    low.loc[malignant_breast, "score_malignant"] *= k
    return validate_scores(pd.concat([scores, low], ignore_index=True)), k


def test_group_medians_are_those_of_the_store_rows(tiny_run):
    scores = tiny_run["scores"]
    table = class_distributions(scores, n_resamples=200)
    br = breast_level(scores)
    for pert in ("none", "noise"):
        rows = br[br["perturbation"] == pert]
        for group, label in (("malignant", 1), (OTHER, 0)):
            vals = rows.loc[rows["label_malignant"] == label, "score_malignant"].to_numpy()
            got = table[(table["perturbation"] == pert) & (table["group"] == group)].iloc[0]
            assert got["n"] == vals.size > 0
            assert got["median"] == pytest.approx(np.median(vals), abs=1e-12)
            q1, q3 = np.quantile(vals, [0.25, 0.75])
            assert (got["q1"], got["q3"]) == pytest.approx((q1, q3), abs=1e-12)
    # the AUC and its interval are the report's (same bootstrap)
    ref = auc_table(scores, levels=["breast"], n_resamples=200).set_index("perturbation")
    for pert in ("none", "noise"):
        got = table[(table["perturbation"] == pert) & (table["group"] == "malignant")].iloc[0]
        assert got["auc_vs_other"] == pytest.approx(ref.loc[pert, "auc"])
        assert (got["ci_low"], got["ci_high"]) == pytest.approx(
            (ref.loc[pert, "ci_low"], ref.loc[pert, "ci_high"])
        )
    # median shift against the unperturbed condition, and each case's own change
    none_med = table[(table["perturbation"] == "none")].set_index("group")["median"]
    noise = table[table["perturbation"] == "noise"].set_index("group")
    assert noise.loc["malignant", "median_shift"] == pytest.approx(
        noise.loc["malignant", "median"] - none_med["malignant"]
    )
    cases = case_scores(scores)
    noisy = cases[cases["perturbation"] == "noise"].merge(
        br[br["perturbation"] == "none"][["exam_id", "laterality", "score_malignant"]],
        on=["exam_id", "laterality"],
    )
    np.testing.assert_allclose(noisy["score_unperturbed"], noisy["score_malignant"])
    np.testing.assert_allclose(noisy["change"], noisy["score"] - noisy["score_malignant"])
    assert noisy["change"].abs().max() > 0  # noise changed the real scores


def test_lowered_malignant_scores_invert_the_auc(tiny_run):
    scores, k = _lowered(tiny_run["scores"])
    table = class_distributions(scores, n_resamples=200).set_index(["perturbation", "group"])
    base = table.loc[("none", "malignant")]
    low = table.loc[("shuffle", "malignant")]
    assert base["auc_vs_other"] > 0.5
    assert low["auc_vs_other"] == 0.0 < 0.5  # every malignant breast now below every other one
    assert low["median"] == pytest.approx(k * base["median"])
    assert low["median_shift"] == pytest.approx((k - 1) * base["median"])
    assert low["share_up"] == 0.0
    other = table.loc[("shuffle", OTHER)]
    assert other["median_shift"] == pytest.approx(0.0, abs=1e-12) and other["share_up"] == 0.0


def test_subgroups_from_findings_split_each_class(tiny_run):
    findings = pd.read_csv(tiny_run["findings"], dtype={"exam_id": str})
    sub = breast_findings(findings)
    malignant_kinds = set(findings.loc[findings["pathology"] == "malignant", "kind"]) - {"microcalc"}
    assert (
        set("+".join(sub["subgroup"]).replace("benign finding only", "").split("+")) - {""} <= malignant_kinds
    )
    table = class_distributions(tiny_run["scores"], subgroups=sub, n_resamples=100)
    for pert, grp in table.groupby("perturbation"):
        for cls in ("malignant", OTHER):
            total = grp.loc[grp["group"] == cls, "n"].sum()
            parts = grp.loc[grp["group"].str.startswith(f"{cls}: "), "n"].sum()
            assert parts == total, (pert, cls)
    cases = case_scores(tiny_run["scores"], subgroups=sub)
    assert (
        cases.loc[cases["label"] == 1, "subgroup"] != NO_FINDING
    ).all()  # a malignant breast has a finding
    # a subgroup's AUC is that of its cases against the other breasts
    row = table[table["group"].str.startswith("malignant: ")].iloc[0]
    sel = cases[(cases["perturbation"] == row["perturbation"]) & (cases["severity"] == row["severity"])]
    kind = row["group"].split(": ", 1)[1]
    part = sel[(sel["label"] == 0) | (sel["subgroup"] == kind)]
    assert row["auc_vs_other"] == pytest.approx(auc(part["score"], part["label"]))


def test_conditions_are_selected_and_named(tiny_run):
    scores, _ = _lowered(tiny_run["scores"])
    table = class_distributions(scores, conditions=["shuffle"], n_resamples=0)
    assert set(table["perturbation"]) == {"none", "shuffle"}  # the unperturbed reference stays
    assert table["ci_low"].isna().all()
    with pytest.raises(MetricsError, match="'lowpass' is not in the scores table"):
        select_conditions(table, ["lowpass"])
    with pytest.raises(MetricsError, match="severity must be a number"):
        select_conditions(table, ["shuffle:x"])
    assert condition_label("noise", 1600.0, 5) == "Gaussian noise, std = 1600 model units"
    assert condition_label("matched-shuffle", 1e6, 5, 8.0) == "matched noise for patch shuffling, grid 8 x 8"
    assert condition_label("none", 0.0, 0) == "unperturbed"
    assert choose_scale(np.array([0.01, 0.5])) == "logit"
    assert choose_scale(np.array([0.2, 0.5])) == "linear"
    assert choose_scale(np.array([0.0, 0.5])) == "linear"  # logit needs scores strictly inside (0, 1)


def test_write_distributions_files(tiny_run, tmp_path):
    scores, _ = _lowered(tiny_run["scores"])
    sub = breast_findings(pd.read_csv(tiny_run["findings"], dtype={"exam_id": str}))
    table, files = write_distributions(scores, tmp_path / "d", subgroups=sub, n_resamples=100, label="tiny")
    assert [f.name for f in files] == [
        "distributions_breast.csv",
        "cases_breast.csv",
        "distributions_breast.png",
    ]
    back = pd.read_csv(files[0])
    np.testing.assert_allclose(back["median"], table["median"], rtol=1e-5)
    with Image.open(files[2]) as im:
        width, height = im.size
    assert 2.2 < width / height < 3.0  # one row of three panels: unperturbed, noise, shuffle


def test_cli_on_a_run_id_and_on_a_scores_file(tiny_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["distributions", tiny_run["run_id"], "--out", str(out), "--resamples", "100"]) == 0
    printed = capsys.readouterr().out
    assert "noise s5 (1600): AUC" in printed
    table = pd.read_csv(out / "distributions_breast.csv")
    assert any(table["group"].str.startswith("malignant: "))  # the run's findings.csv was found
    cases = pd.read_csv(out / "cases_breast.csv")
    assert set(cases["perturbation"]) == {"none", "noise"}
    src = tmp_path / "scores.csv"
    tiny_run["scores"].to_csv(src, index=False)
    out2 = tmp_path / "cli2"
    args = ["distributions", str(src), "--out", str(out2), "--level", "image", "--condition", "noise"]
    assert main([*args, "--resamples", "0"]) == 0
    image_table = pd.read_csv(out2 / "distributions_image.csv")
    assert set(image_table["group"]) == {"malignant", OTHER}  # no findings for a plain file
    n = image_table.groupby("perturbation")["n"].sum()
    assert (n == (tiny_run["scores"]["perturbation"] == "none").sum()).all()
    capsys.readouterr()
    assert main(["distributions", str(src), "--out", str(out2), "--condition", "blur"]) == 2
    assert "'blur' is not in the scores table" in capsys.readouterr().err
