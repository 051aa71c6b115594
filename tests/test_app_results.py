"""AppTest of the Results page on the tiny cohort: small-sample warnings, curves in physical units, Table 1
with its downloads, uploads validated in memory, imports named by content, the per-case tab at breast
level, and runs compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.app_support import errors, open_page, run, tiny_cohort_env


@pytest.fixture(scope="module", autouse=True)
def tiny_cohort(tmp_path_factory):
    yield from tiny_cohort_env(tmp_path_factory.mktemp("results-data"))


CONDITIONS = (
    ("none", 0, 0.0, 0.0),
    ("lowpass", 2, 2.0, -0.1),
    ("lowpass", 4, 0.5, -0.3),
    ("matched-lowpass", 2, 29000.0, -0.05),
    ("noise", 5, 1600.0, -0.2),
)


def tiny_scores(seed: int = 0, weights: str = "random") -> pd.DataFrame:
    """Scores of every image of the tiny cohort (6 exams) under a few conditions."""
    from core.manifest import read_manifest
    from core.phantom import ensure_cohort

    man = read_manifest(ensure_cohort("tiny"))
    rng = np.random.default_rng(seed)
    rows = []
    for pert, sev, par, shift in CONDITIONS:
        for r in man.itertuples():
            s = 0.5 * r.label_malignant + 0.5 * rng.random() + shift * rng.random()
            rows.append(
                dict(model="gmic", weights=weights, perturbation=pert, severity=sev, parameter=par, seed=0,
                     exam_id=r.exam_id, image_id=r.image_id, laterality=r.laterality, view=r.view,
                     label_benign=r.label_benign, label_malignant=r.label_malignant, score_benign=0.5,
                     score_malignant=float(np.clip(s, 0, 1)))
            )  # fmt: skip
    return pd.DataFrame(rows)


def _store(df: pd.DataFrame, name: str) -> str:
    """A finished run of the tiny cohort holding ``df`` (the cohort's images are on this server)."""
    from core.runs import RunConfig, RunStore

    store = RunStore.create(
        RunConfig(model="gmic", manifest="tiny", weights="random", name=name), status="done"
    )
    rows = df.assign(
        condition=df["perturbation"] + "|" + df["severity"].astype(str),
        unit=df["exam_id"] + "|" + df["laterality"] + "|" + df["view"] + "|" + df["image_id"],
    ).to_dict("records")
    store.add_scores(rows)
    store.set(total=str(len(rows)))
    return store.run_id


@pytest.fixture(scope="module")
def tiny_run() -> str:
    return _store(tiny_scores(), "tiny results")


def test_small_sample_warning_and_counts(tiny_run):
    at = run(open_page("Results", {"res_run": tiny_run}))
    assert not errors(at)
    df = tiny_scores()
    un = df[df["perturbation"] == "none"]
    n_pos, n_neg = int(un["label_malignant"].sum()), int((un["label_malignant"] == 0).sum())
    assert n_pos < 30
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Small samples") and "fewer than 30" in w for w in warnings), warnings
    assert any("open markers" in w for w in warnings)
    assert any(f"n_pos {n_pos} malignant and n_neg {n_neg} other images" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 2  # curves against the parameter, ROC


def test_table1_tab_and_downloads(tiny_run):
    at = run(open_page("Results", {"res_run": tiny_run, "res_level": "breast"}))
    table = next(d.value for d in at.dataframe if "unperturbed" in d.value.columns)
    assert list(table.columns[:6]) == ["model", "weights", "members", "n_pos", "n_neg", "unperturbed"]
    assert "low-pass R = 2 cycles/mm" in table.columns and table["unperturbed"].iloc[0].endswith("§")
    cell = table["low-pass R = 2 cycles/mm"].iloc[0]
    assert "(" in cell  # difference to the matched baseline
    assert table["shuffle grid 8 x 8"].iloc[0] == "n/a"
    keys = {b.key for b in at.get("download_button")}
    assert {"res_dl_t1_csv", "res_dl_t1_tex", "res_dl_t1_cells"} <= keys
    assert any("no shuffle condition" in c.value for c in at.caption)
    # A parameter other than the study's fills the column instead.
    at.selectbox(key="res_t1_low-pass").set_value(0.5)
    run(at)
    table = next(d.value for d in at.dataframe if "unperturbed" in d.value.columns)
    assert "low-pass R = 0.5 cycles/mm" in table.columns


def test_per_case_tab_at_breast_level_opens_a_view(tiny_run):
    at = run(open_page("Results", {"res_run": tiny_run, "res_level": "breast"}))
    assert not errors(at)
    changes = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert len(changes) == 12 and "image_id" not in changes.columns  # 6 exams x 2 breasts
    assert not any("switch to the image level" in c.value for c in at.caption)
    first = changes.iloc[0]
    options = at.selectbox(key="res_open_image").options
    assert options[0].startswith(f"{first['exam_id']}") or first["exam_id"] in options[0]
    at.button(key="res_open_lab").click()
    run(at)
    assert [h.value for h in at.header] == ["Image lab"]
    assert at.session_state["src_path"].endswith(".dcm")


def test_upload_is_validated_in_memory_and_named_by_content(tmp_path):
    from core.paths import data_dir

    at = run(open_page("Results"))
    bad = tiny_scores().drop(columns=["label_malignant"]).to_csv(index=False).encode()
    at.file_uploader(key="res_import_upload").set_value(("bad.csv", bad, "text/csv"))
    at.button(key="res_import").click()
    run(at)
    assert any("bad.csv" in e and "label_malignant" in e for e in errors(at))
    assert not (data_dir() / "imports").exists()  # nothing written for a rejected upload
    good = tiny_scores(seed=2, weights="w-seed0").to_csv(index=False).encode()
    at.file_uploader(key="res_import_upload").set_value(("good.csv", good, "text/csv"))
    at.button(key="res_import").click()
    run(at)
    assert not errors(at)
    label = at.selectbox(key="res_run").format_func(at.selectbox(key="res_run").value)
    assert label.startswith("imported good.csv: gmic (1 weights)")
    assert not (data_dir() / "imports").exists()


def test_compare_two_runs(tiny_run):
    other = _store(tiny_scores(seed=5, weights="other"), "tiny other")
    at = run(
        open_page("Results", {"res_run": tiny_run, "res_level": "breast", "res_cmp_runs": [tiny_run, other]})
    )
    assert not errors(at)
    tests = next(d.value for d in at.dataframe if "p_value" in d.value.columns)
    assert set(tests["perturbation"]) == {"unperturbed", "lowpass", "matched-lowpass", "noise"}
    assert (tests["n_shared"] == 12).all()
    assert "res_dl_cmp" in {b.key for b in at.get("download_button")}
