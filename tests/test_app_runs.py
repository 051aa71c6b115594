"""AppTest of the Runs and Results pages on the tiny cohort: estimate, start/cancel, import, tables, and the
jump from a per-image row to the image lab."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tests.app_support import errors, open_page, run, tiny_cohort_env


@pytest.fixture(scope="module", autouse=True)
def tiny_cohort(tmp_path_factory):
    """One private data folder with the 'tiny' synthetic cohort for every test here (generated once)."""
    yield from tiny_cohort_env(tmp_path_factory.mktemp("runs-data"))


_run = run


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_runs_page_estimates_the_work(tiny_cohort):
    at = _run(open_page("Runs", {"run_weights": "random"}))
    assert not errors(at)
    first = _metrics(at)
    assert first["Conditions"] == "1"  # unperturbed only
    assert int(first["Score rows"]) == int(first["Images"]) > 0
    at.multiselect(key="run_sev_lowpass").set_value([1, 2, 3])
    at.checkbox(key="run_matched").check()
    _run(at)
    est = _metrics(at)
    n_img = int(est["Images"])
    # 1 unperturbed + 3 low-pass + their 3 matched-noise baselines
    assert est["Conditions"] == "7" and int(est["Score rows"]) == 7 * n_img
    labels = at.multiselect(key="run_sev_lowpass").options
    assert labels[1] == "2: radius 2" and labels[0] == "1: radius 4"


def test_runs_page_takes_explicit_values(tiny_cohort):
    at = _run(open_page("Runs", {"run_weights": "random", "run_par_lowpass": "3, 2.5, 2"}))
    assert not errors(at)
    est = _metrics(at)
    assert est["Conditions"] == "4"  # unperturbed + three radii
    at.text_input(key="run_par_lowpass").set_value("3, 0")
    _run(at)
    assert any("radius must be a number in (0, 100]" in e for e in errors(at))
    assert at.button(key="run_start").disabled


def test_demo_weights_are_labelled_and_required(tiny_cohort):
    from core.paths import ASSETS_DIR

    at = _run(open_page("Runs"))
    assert at.selectbox(key="run_weights").value == "demo"
    assert at.selectbox(key="run_weights").options[:2] == ["demo", "demo-fast"]
    said = [c.value for c in at.caption if "not a clinical model" in c.value]
    assert said and "0.1 mm pixels, sees up to 5 cycles/mm" in said[0]
    installed = (ASSETS_DIR / "weights" / "gmic-demo.pt").is_file()
    missing = [w.value for w in at.warning if "gmic-demo.pt" in w.value]
    assert bool(missing) != installed
    assert at.button(key="run_start").disabled != installed
    at.selectbox(key="run_weights").set_value("demo-fast")
    _run(at)
    said = [c.value for c in at.caption if "not a clinical model" in c.value]
    assert said and "0.3 mm pixels, sees up to 1.67 cycles/mm" in said[0]


def test_runs_page_reports_a_bad_manifest(tiny_cohort, tmp_path):
    state = {
        "run_weights": "random",
        "run_cohort": "manifest...",
        "run_manifest": str(tmp_path / "missing.csv"),
    }
    at = _run(open_page("Runs", state))
    msgs = [e.value for e in at.error]
    assert msgs and "missing.csv" in msgs[0]
    assert at.button(key="run_start").disabled


@pytest.mark.slow
def test_start_and_cancel_a_run(tiny_cohort):
    from core.runs import list_runs, run_status

    at = _run(
        open_page(
            "Runs", {"run_weights": "random", "run_max_images": 1, "run_name": "apptest", "run_batch": 1}
        )
    )
    at.multiselect(key="run_sev_lowpass").set_value([2])
    _run(at)
    at.button(key="run_start").click()
    _run(at)
    assert not errors(at)
    assert any("Queued" in s.value for s in at.success)
    runs = list_runs()
    run_id = runs[runs["name"] == "apptest"]["run_id"].iloc[0]
    assert at.session_state["runs_pick"] == run_id
    if run_status(run_id).status in ("queued", "running"):
        at.button(key=f"cancel_{run_id}").click()
        _run(at)
    assert run_status(run_id).status in ("cancelled", "running", "done")  # running: stops between images


def _scores_table(n: int = 24, seed: int = 0) -> pd.DataFrame:
    """A small scores table of the tiny cohort's images: unperturbed and low-pass R = 1 (severity 3)."""
    from core.manifest import read_manifest
    from core.phantom import ensure_cohort

    man = read_manifest(ensure_cohort("tiny")).head(n)
    rng = np.random.default_rng(seed)
    rows = []
    for pert, sev, par, shift in (("none", 0, 0.0, 0.0), ("lowpass", 3, 1.0, -0.3)):
        for r in man.itertuples():
            base = 0.6 * r.label_malignant + 0.4 * rng.random()
            rows.append(
                dict(model="gmic", weights="random", perturbation=pert, severity=sev, parameter=par, seed=0,
                     exam_id=r.exam_id, image_id=r.image_id, laterality=r.laterality, view=r.view,
                     label_benign=r.label_benign, label_malignant=r.label_malignant,
                     score_benign=0.5, score_malignant=float(np.clip(base + shift * rng.random(), 0, 1)))
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_results_import_and_views(tiny_cohort, tmp_path):
    outside = tmp_path / "scores.csv"
    _scores_table().to_csv(outside, index=False)
    at = _run(open_page("Results", {"res_import_path": str(outside)}))
    at.button(key="res_import").click()
    _run(at)
    assert any("outside the folders this app may read" in e for e in errors(at))
    path = tiny_cohort.parents[2] / "scores-import.csv"  # inside the data folder, an allowed root
    shutil.copy(outside, path)
    at = _run(open_page("Results", {"res_import_path": str(path)}))
    at.button(key="res_import").click()
    _run(at)
    assert not errors(at)
    assert any("Imported" in s.value for s in at.success)
    assert at.selectbox(key="res_run").value == at.session_state["res_run"]
    assert at.radio(key="res_level").options == ["image", "breast"]
    assert len(at.get("plotly_chart")) >= 2  # AUC vs severity and ROC
    shapes = [d.value.shape for d in at.dataframe]
    assert (24, 9) in shapes  # per-image changes: 24 images, keys + score_a, score_b, change
    at.radio(key="res_level").set_value("breast")
    _run(at)
    assert not errors(at)


def test_results_row_opens_the_image_lab(tiny_cohort):
    """A run of the tiny cohort knows its images: a selected per-image row opens it in the lab."""
    from core.runs import RunConfig, RunStore

    df = _scores_table(seed=1)
    store = RunStore.create(
        RunConfig(model="gmic", manifest="tiny", weights="random", name="lab-jump"), status="done"
    )
    rows = df.assign(
        condition=df["perturbation"] + "|" + df["severity"].astype(str),
        unit=df["exam_id"] + "|" + df["laterality"] + "|" + df["view"] + "|" + df["image_id"],
    ).to_dict("records")
    store.add_scores(rows)
    store.set(total=str(len(rows)))
    at = _run(open_page("Results", {"res_run": store.run_id}))
    assert at.selectbox(key="res_run").value == store.run_id
    assert at.selectbox(key="res_chg_b").value.endswith("lowpass sev 3 (1)")
    target = at.selectbox(key="res_open_image").options[2]
    at.selectbox(key="res_open_image").set_value(target)
    at.button(key="res_open_lab").click()
    _run(at)
    assert not errors(at)
    assert [h.value for h in at.header] == ["Image lab"]
    assert at.sidebar.selectbox(key="src_kind").value == "Server path"
    assert at.session_state["src_path"].endswith(f"{target}.dcm")
    params = at.session_state["lab_last_params"]
    assert params.perturbation == "lowpass" and params.radius == pytest.approx(1.0, rel=0.05)
