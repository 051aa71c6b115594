"""core.runs: config, grid, matched baseline, the plain per-batch work, the store and the worker.

Real parts throughout: the synthetic ``tiny`` cohort, and GMIC/DMV randomly initialised at a small input
size and saved through the project checkpoint format.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from core.metrics import SCORE_COLUMNS, validate_scores, write_report
from core.runs import (
    RunConfig,
    RunError,
    RunStore,
    Timings,
    base_conditions,
    cancel_run,
    change_norms,
    create_run,
    estimate_work,
    execute_run,
    export_scores,
    image_seed,
    list_runs,
    load_config,
    load_scores,
    matched_conditions,
    n_conditions,
    resume_run,
    run_status,
    score_items,
    work_items,
)


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory):
    from core.phantom import generate_cohort

    return generate_cohort("tiny", tmp_path_factory.mktemp("cohort") / "tiny-0", 0)


def _save(arch: str, path, config: dict):
    from core.models import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model(arch, config=config)
    save_checkpoint(
        path, model, arch=arch, variant="resnet18" if arch == "gmic" else "image-only", config=config
    )
    return path


@pytest.fixture(scope="session")
def gmic_weights(tmp_path_factory):
    cfg = {"input_size": [192, 128], "crop_shape": [48, 48], "K": 2, "percent_t": 0.05, "spacing_mm": 0.4}
    return _save("gmic", tmp_path_factory.mktemp("w") / "gmic-small.pt", cfg)


@pytest.fixture(scope="session")
def dmv_weights(tmp_path_factory):
    return _save(
        "dmv", tmp_path_factory.mktemp("w") / "dmv-small.pt", {"input_size": [192, 128], "spacing_mm": 0.4}
    )


def test_config_round_trips_and_validates(tmp_path):
    cfg = RunConfig(
        model="gmic", manifest="tiny", perturbations={"lowpass": [4, 2, 2], "noise": 5}, seeds=[1, 0]
    )
    assert cfg.perturbations == {"lowpass": [2, 4], "noise": [5]} and cfg.seeds == [0, 1]
    for suffix in (".json", ".toml"):
        path = cfg.save(tmp_path / f"c{suffix}")
        assert load_config(path) == cfg
    with pytest.raises(RunError, match="unknown perturbation 'blur'"):
        RunConfig(model="gmic", manifest="x", perturbations={"blur": [1]})
    with pytest.raises(RunError, match=r"lowpass severities must be integers in \(1, 2, 3, 4, 5\), got 7"):
        RunConfig(model="gmic", manifest="x", perturbations={"lowpass": [7]})
    with pytest.raises(RunError, match="model must be one of"):
        RunConfig(model="resnet", manifest="x")
    (tmp_path / "bad.json").write_text('{"model": "gmic", "manifest": "x", "colour": 1}')
    with pytest.raises(RunError, match=r"bad\.json: unknown key\(s\) colour"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(RunError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_grid_expansion_and_matched_conditions():
    cfg = RunConfig(
        model="gmic", manifest="x", perturbations={"lowpass": [1, 2], "noise": [5], "shuffle": [5]},
        seeds=[0, 3], matched_baseline=True,
    )  # fmt: skip
    conds = base_conditions(cfg)
    keys = [c.key for c in conds]
    assert keys[0] == "none|0|0"
    # filters once, seeded perturbations once per seed
    assert keys.count("lowpass|1|0") == 1 and "lowpass|1|3" not in keys
    assert {"noise|5|0", "noise|5|3", "shuffle|5|0", "shuffle|5|3"} <= set(keys)
    assert [c.parameter for c in conds if c.perturbation == "lowpass"] == [4.0, 2.0]
    norms = {"lowpass|1": 10.0, "lowpass|2": 20.0, "shuffle|5": 30.0}
    matched = matched_conditions(cfg, norms)
    # no baseline for noise; one per target perturbation x severity x seed, parameter = the norm
    assert sorted(c.key for c in matched) == sorted(
        f"matched-{p}|{s}|{seed}"
        for p, s in (("lowpass", 1), ("lowpass", 2), ("shuffle", 5))
        for seed in (0, 3)
    )
    assert {c.parameter for c in matched if c.base == "lowpass" and c.severity == 2} == {20.0}
    assert n_conditions(cfg) == len(conds) + len(matched) == 7 + 6
    assert image_seed(0, "a") == image_seed(0, "a") != image_seed(1, "a")


def test_work_items_gmic_and_dmv(tiny_manifest):
    from core.manifest import read_manifest

    df = read_manifest(tiny_manifest)
    g, _ = work_items(df, "gmic", max_images=5)
    assert len(g) == 5 and all(len(i.images) == 1 for i in g) and g[0].units == [g[0].images[0].image_id]
    d, problems = work_items(df, "dmv")
    assert len(d) == df["exam_id"].nunique() and not problems
    assert [f"{r.laterality}-{r.view}" for r in d[0].images] == ["L-CC", "R-CC", "L-MLO", "R-MLO"]
    d2, problems = work_items(df[df["image_id"] != d[0].images[2].image_id], "dmv")
    assert len(d2) == len(d) - 1 and "L-MLO" in problems[0]


def test_unknown_labels_stay_unknown(tiny_manifest):
    """An empty manifest label is unknown (None, stored as NULL), never counted as a negative."""
    from core.manifest import read_manifest

    df = read_manifest(tiny_manifest).astype({"label_malignant": object})
    df.loc[df.index[:2], "label_malignant"] = float("nan")
    g, _ = work_items(df, "gmic")
    assert [i.images[0].label_malignant for i in g[:3]] == [None, None, int(df["label_malignant"].iloc[2])]
    assert all(i.images[0].label_benign in (0, 1) for i in g)


def test_change_norms_and_matched_noise_norm(tiny_manifest):
    from core.imaging import load_mammogram
    from core.manifest import read_manifest
    from core.perturb import lowpass, matched_noise

    items, _ = work_items(read_manifest(tiny_manifest), "gmic", max_images=2)
    cfg = RunConfig(model="gmic", manifest="x", perturbations={"lowpass": [3]}, matched_baseline=True)
    target = [c for c in base_conditions(cfg) if c.perturbation == "lowpass"]
    sums = change_norms(items, target)
    expected = []
    for it in items:
        row = it.images[0]
        x = load_mammogram(row.path, spacing_mm=row.spacing_mm).pixels.astype(np.float64)
        expected.append(np.linalg.norm(lowpass(x.astype(np.float32), row.spacing_mm, 1.0) - x))
    assert change_norms(items, target, workers=1) == change_norms(items, target, workers=3) == sums
    total, count = sums["lowpass|3"]
    assert count == 2 and total == pytest.approx(sum(expected), rel=1e-5)
    mean = total / count
    y = matched_noise(x.astype(np.float32), mean, seed=5)
    assert np.linalg.norm(y.astype(np.float64) - x) == pytest.approx(mean, rel=1e-4)


def test_change_norms_stops_when_asked(tiny_manifest):
    from core.manifest import read_manifest

    items, _ = work_items(read_manifest(tiny_manifest), "gmic", max_images=8)
    cfg = RunConfig(model="gmic", manifest="x", perturbations={"lowpass": [3]}, matched_baseline=True)
    target = [c for c in base_conditions(cfg) if c.perturbation == "lowpass"]
    asked = []

    def after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    assert change_norms(items, target, workers=2, should_stop=after_three) is None
    assert len(asked) == 4  # asked once per image result: stopped at the fourth of eight
    assert change_norms(items, target, should_stop=lambda: False)["lowpass|3"][1] == 8


def test_a_run_cancelled_while_measuring_matched_norms_stops_there_and_resumes(
    data_dir, tiny_manifest, gmic_weights
):
    """A cancel (here SIGTERM, as ``kill`` or the app's cancel sends it to a worker) during the matched
    baselines' first pass ends the run as cancelled before any score, with no norms kept; resumed, it
    measures them and finishes."""
    import os
    import signal

    cfg = RunConfig(
        model="gmic", manifest=str(tiny_manifest), weights=str(gmic_weights), device="cpu",
        perturbations={"lowpass": [4]}, matched_baseline=True, batch_size=4, max_images=4,
    )  # fmt: skip
    run_id = create_run(cfg)

    def log(message: str) -> None:
        if message.startswith("matched baseline: measuring"):
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's handler turns it into a cancel request

    assert execute_run(run_id, log=log) == "cancelled"
    store = RunStore.open(run_id)
    assert run_status(run_id).status == "cancelled" and run_status(run_id).done == 0
    assert store.get("matched_norms") in (None, "")
    assert execute_run(run_id) == "done" and run_status(run_id).done == 12
    assert "lowpass|4" in store.get("matched_norms")


def test_score_items_is_a_plain_deterministic_function(tiny_manifest, gmic_weights):
    from core.manifest import read_manifest
    from core.models import create_model
    from core.models.predict import predict_gmic

    model = create_model("gmic", gmic_weights, device="cpu")
    items, _ = work_items(read_manifest(tiny_manifest), "gmic", max_images=2)
    cfg = RunConfig(model="gmic", manifest="x", perturbations={"lowpass": [2], "noise": [5]})
    conds = base_conditions(cfg)
    t = Timings()
    rows = score_items(model, items, conds, weights_label="w", batch_size=3, timings=t)
    assert len(rows) == 2 * len(conds) and t.n_inputs == 6 and 0 < t.forward_s <= t.total_s
    # same rows again, whatever the number of preparing threads
    again = score_items(model, items, conds, weights_label="w", batch_size=3, prep_workers=1)
    assert rows == again
    assert score_items(model, items, conds, weights_label="w", batch_size=3, prep_workers=3) == rows
    df = validate_scores(pd.DataFrame(rows))
    assert set(df["perturbation"]) == {"none", "lowpass", "noise"}
    # the unperturbed rows are what predict_gmic gives on the loaded images
    from dataclasses import replace

    from core.imaging import load_mammogram

    mams = [
        replace(load_mammogram(r.path, spacing_mm=r.spacing_mm), laterality=r.laterality, view=r.view)
        for r in (i.images[0] for i in items)
    ]
    ref = predict_gmic(model, mams, batch_size=1)
    none = df[df["perturbation"] == "none"].set_index("image_id").loc[[i.key for i in items]]
    np.testing.assert_allclose(none[["score_benign", "score_malignant"]].to_numpy(), ref, atol=1e-5)
    # a perturbation changes the scores
    lp = df[df["perturbation"] == "noise"].set_index("image_id").loc[[i.key for i in items]]
    assert not np.allclose(lp["score_malignant"], none["score_malignant"])


def test_store_ignores_duplicates_and_reports_progress(data_dir):
    cfg = RunConfig(model="gmic", manifest="tiny", name="dup test")
    run_id = create_run(cfg)
    store = RunStore.open(run_id)
    store.set(total="4")
    row = dict.fromkeys(SCORE_COLUMNS, 0) | {
        "image_id": "a",
        "view": "CC",
        "condition": "none|0|0",
        "unit": "a",
    }
    assert store.add_scores([row, row]) == 1
    assert store.add_scores([row, row | {"unit": "b", "image_id": "b"}]) == 2
    st = run_status(run_id)
    assert (st.status, st.done, st.total, st.name) == ("queued", 2, 4, "dup test")
    assert st.rate is not None and st.rate > 0
    assert list_runs()["run_id"].tolist() == [run_id]
    cancel_run(run_id)
    assert run_status(run_id).status == "cancelled"
    with pytest.raises(RunError, match="no such run"):
        run_status("nope")


def test_gmic_run_end_to_end_in_process(data_dir, tiny_manifest, gmic_weights, tmp_path):
    cfg = RunConfig(
        model="gmic", manifest=str(tiny_manifest), weights=str(gmic_weights), device="cpu",
        perturbations={"lowpass": [4]}, matched_baseline=True, batch_size=4, max_images=4,
    )  # fmt: skip
    est = estimate_work(cfg)
    assert (est["n_items"], est["n_conditions"], est["n_rows"]) == (4, 3, 12)
    run_id = create_run(cfg)
    assert execute_run(run_id) == "done"
    st = run_status(run_id)
    assert (st.status, st.done, st.total) == ("done", 12, 12)
    df = load_scores(run_id)
    assert list(df.columns) == list(SCORE_COLUMNS)
    assert (df["weights"] == "gmic-small.pt").all()  # the file name, never its folder
    assert set(df["perturbation"]) == {"none", "lowpass", "matched-lowpass"}
    norms = RunStore.open(run_id).get("matched_norms")
    assert "lowpass|4" in norms
    matched = df[df["perturbation"] == "matched-lowpass"]
    assert matched.groupby("severity")["parameter"].nunique().eq(1).all()
    # Exports keep only the scores columns (cohort ids), and the report reads them.
    path = export_scores(run_id, tmp_path / "scores.csv")
    assert list(pd.read_csv(path).columns) == list(SCORE_COLUMNS)
    rep = write_report(path, tmp_path / "rep", n_resamples=50, figures=False)
    assert set(rep.auc["level"]) == {"image", "breast"}
    # executing a finished run again adds nothing
    assert execute_run(run_id) == "done" and run_status(run_id).done == 12
    with pytest.raises(RunError, match="is done"):
        resume_run(run_id, start_runner=False)


def test_dmv_run_scores_breasts(data_dir, tiny_manifest, dmv_weights):
    cfg = RunConfig(
        model="dmv", manifest=str(tiny_manifest), weights=str(dmv_weights), perturbations={"shuffle": [5]},
        batch_size=2, device="cpu", max_images=8,
    )  # fmt: skip
    run_id = create_run(cfg)
    assert execute_run(run_id) == "done"
    df = load_scores(run_id)
    assert len(df) == 2 * 2 * 2  # 2 exams x 2 breasts x (none, shuffle)
    assert (df["image_id"] == "").all() and (df["view"] == "").all()
    assert set(df["laterality"]) == {"L", "R"}
    assert df["score_malignant"].between(0, 1).all()


def test_failed_run_is_marked_with_its_error(data_dir, tmp_path):
    cfg = RunConfig(model="gmic", manifest=str(tmp_path / "missing.csv"), device="cpu")
    run_id = create_run(cfg)
    with pytest.raises(RunError, match="missing.csv"):
        execute_run(run_id)
    st = run_status(run_id)
    assert st.status == "failed" and "missing.csv" in st.error


def test_cli_run_list_and_export(data_dir, tiny_manifest, gmic_weights, tmp_path, capsys):
    from core.cli import main

    cfg = RunConfig(
        model="gmic", manifest=str(tiny_manifest), weights=str(gmic_weights), device="cpu", max_images=2
    )
    path = cfg.save(tmp_path / "run.toml")
    assert main(["run", str(path), "--run-id", "cli-run", "--quiet"]) == 0
    assert run_status("cli-run").status == "done"
    assert main(["run", "--list"]) == 0
    assert "cli-run" in capsys.readouterr().out
    out = tmp_path / "s.parquet"
    assert main(["run", "--export", "cli-run", str(out)]) == 0
    assert list(pd.read_parquet(out).columns) == list(SCORE_COLUMNS) and len(pd.read_parquet(out)) == 2
    (tmp_path / "bad.toml").write_text('model = "gmic"\n')
    assert main(["run", str(tmp_path / "bad.toml")]) == 2
    assert "missing key(s) manifest" in capsys.readouterr().err


def test_cli_run_with_other_weights(data_dir, tiny_manifest, gmic_weights, tmp_path):
    """``run CONFIG --weights FILE``: one sweep config for every checkpoint of a training run."""
    import shutil

    from core.cli import main
    from core.runs import load_scores

    cfg = RunConfig(model="gmic", manifest=str(tiny_manifest), weights="random", device="cpu", max_images=2)
    path = cfg.save(tmp_path / "sweep.toml")
    checkpoint = shutil.copy(gmic_weights, tmp_path / "gmic-run-epoch03.pt")
    assert main(["run", str(path), "--weights", str(checkpoint), "--run-id", "other", "--quiet"]) == 0
    assert set(load_scores("other")["weights"]) == {"gmic-run-epoch03.pt"}
    assert main(["run", str(path), "--weights", str(tmp_path / "none.pt"), "--run-id", "x", "--quiet"]) != 0


def test_import_scores_as_a_finished_run(data_dir, tmp_path):
    from core.runs import import_scores
    from tests.test_metrics_tables import make_scores

    src = tmp_path / "elsewhere.csv"
    original = validate_scores(make_scores(n_exams=12))
    original.to_csv(src, index=False)
    run_id = import_scores(src)
    st = run_status(run_id)
    assert (st.status, st.done, st.total) == ("done", len(original), len(original))
    key = ["perturbation", "severity", "image_id"]
    got = validate_scores(load_scores(run_id)).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, original.sort_values(key).reset_index(drop=True))


def test_a_running_run_is_not_started_twice(data_dir):
    """Liveness is the worker's lock, not a PID: a run whose lock is held cannot be started, resumed or
    deleted; a recorded PID of a live process that holds no lock (this test process) is not a worker."""
    import os

    from core.runs import delete_run, lock

    run_id = create_run(RunConfig(model="gmic", manifest="tiny"))
    store = RunStore.open(run_id)
    with lock.hold(store.folder):  # what a worker holds for its whole life
        store.set(status="running", pid="1")
        assert run_status(run_id).status == "running"
        with pytest.raises(RunError, match="already running"):
            execute_run(run_id)
        with pytest.raises(RunError, match="running; cancel it first"):
            delete_run(run_id)
        with pytest.raises(RunError, match="is running"):
            resume_run(run_id, start_runner=False)
    # its process is gone, whatever PID the store recorded (here one that is alive): interrupted
    store.set(pid=str(os.getpid()))
    assert run_status(run_id).status == "interrupted"


def test_dmv_run_with_augmented_samples_equals_direct_prediction(data_dir, tiny_manifest, dmv_weights):
    """``dmv_samples > 0``: each breast's score is the mean over that many augmented windows (seeded), the
    same numbers as :func:`predict_dmv_crops` on the exam's crops."""
    from core.imaging import load_mammogram
    from core.manifest import read_manifest
    from core.models import create_model
    from core.models.inputs import crop_for_model
    from core.models.predict import predict_dmv_crops

    cfg = RunConfig(
        model="dmv", manifest=str(tiny_manifest), weights=str(dmv_weights), perturbations={},
        batch_size=3, device="cpu", max_images=4, dmv_samples=3,
    )  # fmt: skip
    run_id = create_run(cfg)
    assert execute_run(run_id) == "done"
    df = load_scores(run_id).sort_values("laterality")
    assert len(df) == 2 and (df["perturbation"] == "none").all()
    exam = df["exam_id"].iloc[0]
    manifest = read_manifest(tiny_manifest)
    model = create_model("dmv", weights=str(dmv_weights), device="cpu")
    crops = {}
    for r in manifest[manifest["exam_id"] == exam].itertuples():
        view = f"{r.laterality}-{r.view}"
        crops[view] = crop_for_model(load_mammogram(r.path), model.spec, view=view)
    p = predict_dmv_crops(model, [crops], samples=3, seed=0)[0]  # L/R benign, L/R malignant
    np.testing.assert_allclose(df["score_malignant"].to_numpy(), [p[2], p[3]], rtol=1e-5)
    np.testing.assert_allclose(df["score_benign"].to_numpy(), [p[0], p[1]], rtol=1e-5)


def test_list_runs_is_newest_first_whatever_the_ids(data_dir, tiny_manifest, gmic_weights):
    cfg = RunConfig(model="gmic", manifest=str(tiny_manifest), weights=str(gmic_weights), device="cpu")
    ids = [create_run(cfg, "zz-first"), create_run(cfg, "20990101-000000-auto"), create_run(cfg, "aa-last")]
    assert list_runs()["run_id"].tolist() == ids[::-1]
