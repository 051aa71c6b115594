"""The Ray engine of runs (core.runs.ray_engine) against the local engine, on the synthetic tiny cohort.

A real local Ray (2 CPU slots, no dashboard) is started once for the module and shut down after it; the
engine joins it. Models are GMIC and DMV randomly initialised at a small input size, saved through the
project checkpoint format. The kill test kills the model actor's process (found by the process title Ray
gives it, among this test's own descendants) while the run is scoring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.runs import RunConfig, RunError, RunStore, create_run, execute_run, load_scores

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra (bash scripts/install.sh)")

pytestmark = pytest.mark.slow

KEYS = ["model", "perturbation", "severity", "seed", "exam_id", "image_id", "laterality", "view"]
GRID = {"lowpass": [2], "noise": [5], "shuffle": [5]}


@pytest.fixture(scope="module")
def local_ray():
    # one GPU slot declared (this machine has no GPU): runs with device "cpu" ignore it, the GPU-actor test
    # below is scheduled on it
    ray.init(
        num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from core.phantom import generate_cohort

    return generate_cohort("tiny", tmp_path_factory.mktemp("cohort") / "tiny-0", 0)


def _weights(tmp_path_factory, arch: str):
    from core.models import build_model, save_checkpoint

    config = {"input_size": [192, 128], "spacing_mm": 0.4}
    if arch == "gmic":
        config.update(crop_shape=[48, 48], K=2, percent_t=0.05)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / f"{arch}-small.pt"
    variant = "resnet18" if arch == "gmic" else "image-only"
    return save_checkpoint(path, build_model(arch, config=config), arch=arch, variant=variant, config=config)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return {arch: _weights(tmp_path_factory, arch) for arch in ("gmic", "dmv")}


@pytest.fixture()
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "data"))


def _config(tiny, weights, arch, engine, **kw):
    kw = {"perturbations": GRID, "batch_size": 4, "matched_baseline": True, "device": "cpu", **kw}
    return RunConfig(model=arch, manifest=str(tiny), weights=str(weights[arch]), engine=engine, **kw)


def _run(config) -> tuple[str, str]:
    run_id = create_run(config)
    return run_id, execute_run(run_id)


def _compare(local, other) -> float:
    """Row for row: the same keys, the same labels and parameters; returns the max |score difference|."""
    assert len(local) == len(other) and not local.duplicated(KEYS).any() and not other.duplicated(KEYS).any()
    merged = local.merge(other, on=KEYS, suffixes=("_l", "_r"), validate="one_to_one")
    assert len(merged) == len(local)
    for col in ("label_benign", "label_malignant"):
        assert merged[f"{col}_l"].equals(merged[f"{col}_r"])
    np.testing.assert_allclose(merged["parameter_l"], merged["parameter_r"], rtol=1e-12)
    return float(
        max(np.abs(merged[f"score_{c}_l"] - merged[f"score_{c}_r"]).max() for c in ("benign", "malignant"))
    )


@pytest.fixture(scope="module")
def reference(tiny, weights, tmp_path_factory):
    """The local engine's score tables (GMIC and DMV), in a data folder of their own."""
    old = os.environ.get("MAMMO_ROBUST_DATA")
    os.environ["MAMMO_ROBUST_DATA"] = str(tmp_path_factory.mktemp("ref-data"))
    try:
        out = {}
        for arch in ("gmic", "dmv"):
            run_id, status = _run(_config(tiny, weights, arch, "local"))
            assert status == "done"
            out[arch] = load_scores(run_id)
        return out
    finally:
        if old is None:
            del os.environ["MAMMO_ROBUST_DATA"]
        else:
            os.environ["MAMMO_ROBUST_DATA"] = old


@pytest.mark.parametrize("arch", ["gmic", "dmv"])
def test_ray_engine_equals_local_engine(local_ray, tiny, weights, reference, data, arch):
    run_id, status = _run(_config(tiny, weights, arch, "ray"))
    assert status == "done"
    ray_scores = load_scores(run_id)
    diff = _compare(reference[arch], ray_scores)
    assert diff <= 1e-6, f"{arch}: Ray and local scores differ by {diff:.2e}"
    print(f"{arch}: {len(ray_scores)} rows, max |Ray - local| {diff:.1e}")
    # the matched baselines were measured on Ray too: same conditions, same norms
    assert set(ray_scores["perturbation"]) == {"none", "lowpass", "noise", "shuffle", "matched-lowpass",
                                              "matched-shuffle"}  # fmt: skip
    timings = json.loads(RunStore.open(run_id).get("timings"))
    assert timings["engine"] == "ray" and timings["n_images"] == 24 and timings["forward_s"] > 0


def test_gpu_actors_where_the_cluster_has_gpus(local_ray, tiny, weights, reference, data):
    """Without a device in the config, a cluster with GPUs gets GPU actors, as many as it has GPUs. Here
    the GPU is a slot Ray was told of: the actor holds it, finds no CUDA and scores on the CPU, so the
    scheduling path is what is tested, and the scores still equal the local engine's."""
    config = _config(tiny, weights, "gmic", "ray", device=None, workers=2)
    log: list[str] = []
    run_id = create_run(config)
    assert execute_run(run_id, log=log.append) == "done"
    assert any("2 workers asked for, but the cluster has 1 GPU(s): using 1" in line for line in log), log
    assert any("with 1 GPU actor(s)" in line for line in log), log
    assert _compare(reference["gmic"], load_scores(run_id)) <= 1e-6


def _ray_descendants(title: str) -> list[int]:
    """PIDs of this process's descendants whose process title starts with ``title``."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    parents[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    me, out = os.getpid(), []
    for pid in parents:
        p, seen = pid, 0
        while p in parents and p != me and seen < 50:
            p, seen = parents[p], seen + 1
        if p != me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith(title):
            out.append(pid)
    return out


def _in_thread(run_id: str) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def target():
        try:
            result["status"] = execute_run(run_id)
        except Exception as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _wait_for_rows(store: RunStore, thread: threading.Thread, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while store.count() == 0 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return store.count()


def test_killed_ray_worker_costs_only_its_batch(local_ray, tiny, weights, reference, data):
    """SIGKILL the model actor mid-run: Ray restarts it and retries its batch; the run completes with
    every row once and the same scores as the local engine."""
    config = _config(tiny, weights, "gmic", "ray", batch_size=2)
    run_id = create_run(config)
    store = RunStore.open(run_id)
    thread, result = _in_thread(run_id)
    done_at_kill = _wait_for_rows(store, thread)
    actors = _ray_descendants("ray::MapWorker(MapBatches(Scorer))")
    assert actors, "no Scorer actor process found"
    total = int(store.get("total"))
    assert 0 < done_at_kill < total, "the run ended before the actor could be killed"
    for pid in actors:
        os.kill(pid, signal.SIGKILL)
    replacements: set[int] = set()
    deadline = time.monotonic() + 600
    while thread.is_alive() and time.monotonic() < deadline:
        replacements |= set(_ray_descendants("ray::MapWorker(MapBatches(Scorer))")) - set(actors)
        time.sleep(0.05)
    thread.join(timeout=1)
    assert not thread.is_alive() and result.get("status") == "done", result
    assert replacements, "no new model actor took over after the kill"
    print(f"killed actor {actors} at {done_at_kill}/{total} rows; replaced by {sorted(replacements)}")
    assert store.count() == total
    assert _compare(reference["gmic"], load_scores(run_id)) <= 1e-6


def test_cancelled_ray_run_resumes_where_it_stopped(local_ray, tiny, weights, reference, data):
    config = _config(tiny, weights, "dmv", "ray", batch_size=1)
    run_id = create_run(config)
    store = RunStore.open(run_id)
    thread, result = _in_thread(run_id)
    _wait_for_rows(store, thread)
    store.set(cancel_requested="1")
    thread.join(timeout=600)
    total = int(store.get("total"))
    stopped_at = store.count()
    assert result.get("status") == "cancelled" and 0 < stopped_at < total, (result, stopped_at)
    status = execute_run(run_id)  # resume: only the items that miss rows are scored
    assert status == "done" and store.count() == total
    resumed = json.loads(store.get("timings"))
    rows_per_exam = 2 * int(store.get("n_conditions"))  # two breasts per exam under every condition
    assert resumed["n_images"] == 4 * (total - stopped_at) // rows_per_exam
    assert _compare(reference["dmv"], load_scores(run_id)) <= 1e-6


def test_an_unreadable_image_becomes_error_rows_and_the_run_goes_on(local_ray, tiny, weights, data, tmp_path):
    """As in the local engine: the unreadable image's keys become error rows (stage ``read``, named by its
    cohort id), every other row is stored, the run ends ``done, N errors``; a resume does not read the image
    again, ``--retry-errors`` does (through the CLI, on Ray) and, once the file is mended, scores it."""
    import shutil

    from core.cli import main
    from core.manifest import read_manifest

    cohort = tmp_path / "cohort"
    shutil.copytree(tiny.parent, cohort)
    bad = read_manifest(cohort / "manifest.csv").iloc[5]  # paths resolved against the copy's folder
    target = Path(bad.path)
    assert target.is_relative_to(cohort)
    original = target.read_bytes()
    target.write_bytes(b"not a DICOM file" * 64)
    config = _config(tiny, weights, "gmic", "ray", perturbations={"lowpass": [2]})
    config.manifest = str(cohort / "manifest.csv")
    run_id = create_run(config)
    lines: list[str] = []
    assert execute_run(run_id, log=lines.append) == "done"
    store = RunStore.open(run_id)
    n_cond, total = int(store.get("n_conditions")), int(store.get("total"))
    st = store.status()
    assert (st.status, st.done, st.errors, st.label) == (
        "done",
        total - n_cond,
        n_cond,
        f"done, {n_cond} errors",
    )
    assert lines[-1] == f"done, {n_cond} error row(s)"
    errors = store.errors()
    assert set(errors["image_id"]) == {bad.image_id} and set(errors["stage"]) == {"read"}
    assert all(bad.image_id in m and str(cohort) not in m for m in errors["message"])
    assert bad.image_id not in set(load_scores(run_id)["image_id"])
    print(f"unreadable image under Ray: {n_cond} error rows ({errors['stage'].iloc[0]}), {st.done} scores")
    target.write_bytes(original)
    assert execute_run(run_id) == "done" and store.count_errors() == n_cond  # known bad: not read again
    assert main(["run", "--resume", run_id, "--retry-errors", "--quiet"]) == 0
    st = store.status()
    assert (st.status, st.done, st.errors, st.label) == ("done", total, 0, "done")
    assert json.loads(store.get("timings"))["engine"] == "ray"


def test_scorer_scores_again_one_by_one_after_a_failed_forward_pass(tiny, weights):
    """The model actor's own fallback (no Ray needed to call it): a batch whose forward pass fails is scored
    again item by item, so only the item that breaks the model gets ``score`` errors; the others' rows equal
    those of a batch without it, and an item that failed in its preparation task passes through."""
    import pickle

    from core.manifest import read_manifest
    from core.runs import base_conditions, work_items
    from core.runs.ray_engine import Scorer
    from core.runs.work import prepare_item

    config = _config(tiny, weights, "gmic", "ray", perturbations={"lowpass": [2]}, matched_baseline=False)
    scorer = Scorer(config.to_json(), "w", None)  # threads None: this process keeps its torch threads
    items, _ = work_items(read_manifest(tiny), "gmic", max_images=3)
    conditions = base_conditions(config)
    units = [prepare_item(item, conditions, scorer.model.spec) for item in items]
    units[1].windows = [np.stack([w, w]) for w in units[1].windows]  # a 4-D batch: the forward pass raises

    def batch(ks, failed=()):
        return {
            "k": np.array(ks), "item": [pickle.dumps(items[k]) for k in ks],
            "unit": [b"" if k in failed else pickle.dumps(units[k]) for k in ks],
            "error": ["cannot read" if k in failed else "" for k in ks],
            "stage": ["read" if k in failed else "" for k in ks],
            "image_id": [items[k].key if k in failed else "" for k in ks],
        }  # fmt: skip

    out = scorer(batch([0, 1, 2]))
    by_k = {int(k): i for i, k in enumerate(out["k"])}
    assert sorted(by_k) == [0, 1, 2]
    assert out["stage"][by_k[1]] == "score" and out["image_id"][by_k[1]] == items[1].key
    assert out["error"][by_k[1]] and not out["result"][by_k[1]]
    alone = scorer(batch([0, 2]))
    for k in (0, 2):
        rows, errors = pickle.loads(out["result"][by_k[k]])
        assert not errors and rows == pickle.loads(alone["result"][list(alone["k"]).index(k)])[0]
    passed = scorer(batch([0, 2], failed=(2,)))
    assert list(passed["stage"]) == ["read", ""] and passed["image_id"][0] == items[2].key


def test_ray_engine_without_ray_is_a_clear_error(tiny, weights, data, monkeypatch):
    from core.runs.ray_engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without the extra
    with pytest.raises(RunError, match=r"engine 'ray' needs Ray .*pip install"):
        import_ray()
    run_id = create_run(_config(tiny, weights, "gmic", "ray"))
    with pytest.raises(RunError, match="needs Ray"):
        execute_run(run_id)
    assert RunStore.open(run_id).status().status == "failed"


def test_cli_ray_engine_starts_its_own_local_ray(tiny, weights, tmp_path):
    """``mammo-robust run CONFIG --engine ray`` in a fresh process: a local Ray is started for the run."""
    config = _config(tiny, weights, "gmic", "local", perturbations={}, matched_baseline=False, max_images=4)
    path = config.save(tmp_path / "run.toml")
    env = {**os.environ, "MAMMO_ROBUST_DATA": str(tmp_path / "data")}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "run", str(path), "--engine", "ray", "--run-id", "cli-ray"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ray: started a local Ray" in proc.stdout and "4/4 rows" in proc.stdout
    stored = RunConfig.from_json((tmp_path / "data" / "runs" / "cli-ray" / "config.json").read_text())
    assert stored.engine == "ray"


def test_resume_on_ray_a_run_made_for_the_local_engine(local_ray, tiny, weights, data):
    """``mammo-robust run --resume RUN_ID --engine ray``: the stored config takes the engine, Ray scores."""
    from core.cli import main

    config = _config(tiny, weights, "gmic", "local", perturbations={}, matched_baseline=False, max_images=4)
    run_id = create_run(config)
    assert main(["run", "--resume", run_id, "--engine", "ray", "--workers", "1", "--quiet"]) == 0
    store = RunStore.open(run_id)
    assert store.config().engine == "ray" and store.config().workers == 1
    assert store.status().status == "done" and store.count() == 4
    assert json.loads(store.get("timings"))["engine"] == "ray"
