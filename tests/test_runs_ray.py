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
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 << 20, log_to_driver=False)
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
    kw = {"perturbations": GRID, "batch_size": 4, "matched_baseline": True, **kw}
    return RunConfig(
        model=arch, manifest=str(tiny), weights=str(weights[arch]), device="cpu", engine=engine, **kw,
    )  # fmt: skip


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


def test_an_unreadable_image_fails_alone_and_the_run_names_it(local_ray, tiny, weights, data, tmp_path):
    """Per-item failures do not stop the dataset: every other row is stored, the run fails naming the image,
    and a resume after the file is mended completes the run."""
    import shutil

    cohort = tmp_path / "cohort"
    shutil.copytree(tiny.parent, cohort)
    from core.manifest import read_manifest

    bad = read_manifest(cohort / "manifest.csv").iloc[5]  # paths resolved against the copy's folder
    target = Path(bad.path)
    assert target.is_relative_to(cohort)
    original = target.read_bytes()
    target.write_bytes(b"not a DICOM file" * 64)
    config = _config(tiny, weights, "gmic", "ray", matched_baseline=False)
    config.manifest = str(cohort / "manifest.csv")
    run_id = create_run(config)
    with pytest.raises(RunError, match=rf"1 item\(s\) could not be scored: {bad.image_id} \(prepare\)"):
        execute_run(run_id)
    store = RunStore.open(run_id)
    n_cond = int(store.get("n_conditions"))
    assert store.status().status == "failed" and bad.image_id in store.status().error
    assert store.count() == int(store.get("total")) - n_cond
    assert bad.image_id not in set(load_scores(run_id)["image_id"])
    target.write_bytes(original)
    assert execute_run(run_id) == "done" and store.count() == int(store.get("total"))


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
