"""core.metrics tables: validation, breast-level aggregation, AUC table, curves, Table 1, score changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.metrics import (
    AUC_COLUMNS,
    SCORE_COLUMNS,
    MetricsError,
    auc,
    auc_table,
    auc_vs_severity,
    breast_level,
    delong_test,
    read_scores,
    roc_points,
    score_changes,
    table1,
    validate_scores,
    weights_family,
)


def make_scores(seed=0, n_exams=60, views=("CC", "MLO"), conditions=None, weights=("demo",)) -> pd.DataFrame:
    """A small image-level scores table whose signal fades with severity."""
    rng = np.random.default_rng(seed)
    conditions = conditions or [
        ("none", 0, 0.0),
        ("lowpass", 1, 2.0),
        ("lowpass", 2, 0.5),
        ("matched-lowpass", 1, 40.0),
    ]
    exams = [f"e{i:03d}" for i in range(n_exams)]
    malignant = {(e, lat): int(rng.random() < 0.2) for e in exams for lat in "LR"}
    malignant[(exams[0], "L")] = 1
    noise = {(e, lat, v): rng.normal() for e in exams for lat in "LR" for v in views}
    rows = []
    for w in weights:
        for pert, sev, par in conditions:
            signal = {"none": 2.0, "lowpass": 2.0 - 0.9 * sev}.get(pert, 1.5)
            for (e, lat), lab in malignant.items():
                for v in views:
                    s = 1 / (1 + np.exp(-(noise[(e, lat, v)] + signal * lab - 1.5 + 0.3 * rng.normal())))
                    rows.append(
                        dict(
                            model="gmic",
                            weights=w,
                            perturbation=pert,
                            severity=sev,
                            parameter=par,
                            seed=0,
                            exam_id=e,
                            image_id=f"{e}-{lat}-{v}",
                            laterality=lat,
                            view=v,
                            label_benign=0,
                            label_malignant=lab,
                            score_benign=0.1,
                            score_malignant=s,
                        )
                    )
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return validate_scores(make_scores())


def test_validation_names_file_and_column(tmp_path):
    df = make_scores(n_exams=10)
    path = tmp_path / "s.csv"
    df.drop(columns=["score_malignant", "exam_id"]).to_csv(path, index=False)
    with pytest.raises(MetricsError, match=r"s\.csv: missing column\(s\) exam_id, score_malignant"):
        read_scores(path)
    bad = df.copy()
    bad.loc[3, "score_malignant"] = np.nan
    bad.to_csv(path, index=False)
    with pytest.raises(MetricsError, match=r"s\.csv: column score_malignant has 1 NaN.*row 4"):
        read_scores(path)
    bad = df.assign(label_malignant=0)
    with pytest.raises(MetricsError, match="x.parquet: no positive case"):
        validate_scores(bad, source="x.parquet")
    bad = df.assign(label_malignant=df["label_malignant"].replace(1, 2))
    with pytest.raises(MetricsError, match="label_malignant must be 0, 1 or empty"):
        validate_scores(bad)
    with pytest.raises(MetricsError, match="duplicated"):
        validate_scores(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(MetricsError, match="not found"):
        read_scores(tmp_path / "missing.csv")
    # benign scores may be empty unless the benign target is asked for
    validate_scores(df.assign(score_benign=np.nan))
    with pytest.raises(MetricsError, match="score_benign"):
        validate_scores(df.assign(score_benign=np.nan), target="benign")


def test_csv_and_parquet_round_trip(tmp_path, scores):
    scores.to_csv(tmp_path / "a.csv", index=False)
    scores.to_parquet(tmp_path / "a.parquet", index=False)
    a = read_scores(tmp_path / "a.csv")
    b = read_scores(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, scores)


def test_breast_level_is_mean_over_views(scores):
    br = breast_level(scores)
    assert (br["image_id"] == "").all() and (br["view"] == "").all()
    assert len(br) == len(scores) // 2
    one = scores[
        (scores["exam_id"] == "e005") & (scores["laterality"] == "R") & (scores["perturbation"] == "none")
    ]
    row = br[(br["exam_id"] == "e005") & (br["laterality"] == "R") & (br["perturbation"] == "none")]
    assert row["score_malignant"].iloc[0] == pytest.approx(one["score_malignant"].mean())
    # Rows already at breast level pass through; mixing both for one breast is an error.
    assert len(breast_level(br)) == len(br)
    with pytest.raises(MetricsError, match="both image rows and a breast-level row"):
        breast_level(pd.concat([scores, br.iloc[:1]]))


def test_auc_table_matches_direct_auc(scores):
    table = auc_table(scores, n_resamples=300)
    assert list(table.columns) == list(AUC_COLUMNS)
    assert set(table["level"]) == {"image", "breast"}
    assert len(table) == 8
    for level, frame in (("image", scores), ("breast", breast_level(scores))):
        sub = frame[(frame["perturbation"] == "lowpass") & (frame["severity"] == 2)]
        row = table[
            (table["level"] == level) & (table["perturbation"] == "lowpass") & (table["severity"] == 2)
        ]
        assert row["auc"].iloc[0] == pytest.approx(auc(sub["score_malignant"], sub["label_malignant"]))
        assert row["n_pos"].iloc[0] == sub["label_malignant"].sum()
    assert (table["ci_low"] < table["auc"]).all() and (table["auc"] < table["ci_high"]).all()
    # An interval depends only on its own condition's cases and scores, and on the seed.
    alone = auc_table(scores[scores["perturbation"] == "lowpass"], n_resamples=300)
    merged = table.merge(alone, on=["perturbation", "severity", "level"], suffixes=("", "_alone"))
    np.testing.assert_allclose(merged["ci_low"], merged["ci_low_alone"])
    assert not np.allclose(auc_table(scores, n_resamples=300, seed=1)["ci_low"], table["ci_low"])


def test_condition_without_positives_keeps_its_row(scores):
    extra = scores[(scores["perturbation"] == "none") & (scores["label_malignant"] == 0)].assign(
        weights="other"
    )
    table = auc_table(pd.concat([scores, extra]), levels=["breast"], n_resamples=50)
    row = table[table["weights"] == "other"]
    assert len(row) == 1 and np.isnan(row["auc"].iloc[0]) and row["n_pos"].iloc[0] == 0


def test_auc_falls_with_severity_and_curves(scores):
    table = auc_table(scores, n_resamples=200)
    curves = auc_vs_severity(table)
    lp = curves[(curves["perturbation"] == "lowpass") & (curves["level"] == "breast")].sort_values("severity")
    assert list(lp["severity"]) == [0, 1, 2]  # "none" shown as severity 0 of the low-pass curve
    assert lp["auc"].is_monotonic_decreasing
    assert (lp["band"] == "95% CI").all()
    assert "none" not in set(curves["perturbation"])


def test_weights_family_groups_seeds():
    assert weights_family("nyu-trained-filtered-seed3") == "nyu-trained-filtered"
    assert weights_family("reader-10") == "reader"
    assert weights_family("demo") == "demo"
    df = validate_scores(make_scores(weights=("x-seed0", "x-seed1", "x-seed2"), n_exams=30))
    curves = auc_vs_severity(auc_table(df, levels=["breast"], n_resamples=0))
    assert set(curves["weights"]) == {"x"}
    assert (curves["n_members"] == 3).all() and curves["band"].str.startswith("min-max").all()
    assert (curves["band_low"] <= curves["auc"]).all() and (curves["auc"] <= curves["band_high"]).all()


def test_table1_differences_and_paired_test(scores):
    t1 = table1(scores, level="breast")
    row = t1[(t1["perturbation"] == "lowpass") & (t1["severity"] == 1)].iloc[0]
    none = t1[t1["perturbation"] == "none"].iloc[0]
    assert row["diff_unperturbed"] == pytest.approx(row["auc"] - none["auc"])
    assert row["diff_baseline"] == pytest.approx(row["auc"] - row["baseline_auc"])
    assert row["cell"] == f"{row['auc']:.2f} ({row['diff_baseline']:+.2f})".replace("-", "\u2212")
    br = breast_level(scores).sort_values(["exam_id", "laterality"])
    a = br[(br["perturbation"] == "lowpass") & (br["severity"] == 1)]
    b = br[br["perturbation"] == "matched-lowpass"]
    assert row["p_baseline"] == pytest.approx(
        delong_test(
            a["score_malignant"].to_numpy(), b["score_malignant"].to_numpy(), a["label_malignant"]
        ).p_value
    )
    # No parentheses without a matched baseline; matched rows are not rows of their own.
    assert t1[(t1["perturbation"] == "lowpass") & (t1["severity"] == 2)]["cell"].iloc[0].count("(") == 0
    assert not t1["perturbation"].str.startswith("matched-").any()
    assert np.isnan(none["diff_unperturbed"])


def test_roc_points_and_score_changes(scores):
    roc = roc_points(scores, level="image", condition={"perturbation": "none"})
    assert set(roc["perturbation"]) == {"none"}
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1
    ch = score_changes(scores, {"perturbation": "none"}, {"perturbation": "lowpass", "severity": 2})
    assert len(ch) == len(scores) // 4
    assert (ch["change"] == ch["score_b"] - ch["score_a"]).all()
    assert ch["change"].abs().is_monotonic_decreasing
    with pytest.raises(MetricsError, match="no rows match"):
        score_changes(scores, {"perturbation": "none"}, {"perturbation": "shuffle"})


def test_unlabelled_cases_are_left_out_of_the_auc():
    """Empty labels (e.g. breasts never biopsied) are unknown, not negative: they leave the AUC."""
    df = make_scores(n_exams=10)
    labelled = validate_scores(df)
    unknown = df.copy().astype({"label_malignant": object})
    unknown.loc[:4, "label_malignant"] = ""
    out = validate_scores(unknown)
    assert out.attrs["unlabelled_rows"] == 5
    assert len(out) == len(labelled) - 5
    assert out["label_malignant"].dtype == np.int64
    with pytest.raises(MetricsError, match="empty in every row"):
        validate_scores(df.assign(label_malignant=""))
