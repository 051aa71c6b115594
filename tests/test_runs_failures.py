"""Runs that finish: unreadable images become error rows, damaged stores are listed as damaged and refused,
liveness is the worker's lock (not a PID), weights are checked before a run is queued, progress is written
per image.

Real parts: the synthetic ``tiny`` cohort with one image overwritten by random bytes, small GMIC/DMV models
saved through the project checkpoint format, real SQLite stores damaged on disk, real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import AccessError
from core.runs import (
    RunConfig,
    RunError,
    RunStore,
    cancel_run,
    create_run,
    execute_run,
    export_scores,
    list_runs,
    load_scores,
    resume_run,
    run_errors,
    run_status,
    runner_loop,
)
from tests.test_runs import dmv_weights, gmic_weights, tiny_manifest  # noqa: F401 (fixtures)


def _cohort_with_garbage(tiny_manifest, folder: Path, bad: list[int]) -> tuple[Path, list[str]]:  # noqa: F811
    """A copy of the tiny cohort's manifest in ``folder`` whose rows ``bad`` point at files of random bytes;
    returns the manifest and the garbage images' ids."""
    df = pd.read_csv(tiny_manifest)
    df["path"] = [str((Path(tiny_manifest).parent / p).resolve()) for p in df["path"]]
    rng = np.random.default_rng(7)
    ids = []
    for i in bad:
        junk = folder / f"junk-{i}.dcm"
        junk.write_bytes(rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes())
        df.loc[i, "path"] = str(junk)
        ids.append(str(df.loc[i, "image_id"]))
    path = folder / "manifest.csv"
    df.to_csv(path, index=False)
    return path, ids


def _gmic(manifest, weights, **kw) -> RunConfig:
    base = dict(
        model="gmic", manifest=str(manifest), weights=str(weights), device="cpu",
        perturbations={"lowpass": [4]}, matched_baseline=True, batch_size=8, max_images=6,
    )  # fmt: skip
    return RunConfig(**{**base, **kw})


def test_garbage_image_becomes_one_error_row_per_condition(data_dir, tiny_manifest, gmic_weights, tmp_path):  # noqa: F811
    manifest, (bad,) = _cohort_with_garbage(tiny_manifest, tmp_path, [2])
    run_id = create_run(_gmic(manifest, gmic_weights), "with-garbage")
    assert execute_run(run_id) == "done"
    st = run_status(run_id)
    assert (st.status, st.done, st.errors, st.total) == ("done", 5 * 3, 3, 6 * 3)
    assert st.label == "done, 3 errors" and st.fraction == 1.0
    errors = run_errors(run_id)
    assert len(errors) == 3  # none, lowpass 4, matched-lowpass 4
    assert set(errors["image_id"]) == {bad} and set(errors["stage"]) == {"read"}
    assert set(errors["perturbation"]) == {"none", "lowpass", "matched-lowpass"}
    assert all(bad in m and "not a recognised image file" in m for m in errors["message"])
    assert not any(str(tmp_path) in m for m in errors["message"])  # named by cohort id, not by path
    # scores, exports and listings never count error rows as scores
    scores = load_scores(run_id)
    assert bad not in set(scores["image_id"]) and scores["score_malignant"].notna().all()
    assert len(pd.read_csv(export_scores(run_id, tmp_path / "s.csv"))) == 15
    row = list_runs().set_index("run_id").loc[run_id]
    assert (row["status"], row["done"], row["errors"]) == ("done", 15, 3)

    # the other images' scores (and the matched norm, measured over the readable images) are those of a
    # run over the cohort without the garbage row: the bad image took no place in the model's batches
    clean = pd.read_csv(manifest).drop(index=2)
    clean.to_csv(tmp_path / "clean.csv", index=False)
    ref = create_run(_gmic(tmp_path / "clean.csv", gmic_weights, max_images=5), "reference")
    assert execute_run(ref) == "done"
    pd.testing.assert_frame_equal(scores, load_scores(ref), check_exact=True)


def test_resume_does_not_retry_a_known_bad_image(
    data_dir,
    tiny_manifest,  # noqa: F811
    gmic_weights,  # noqa: F811
    tmp_path,
):
    manifest, (bad,) = _cohort_with_garbage(tiny_manifest, tmp_path, [1])
    run_id = create_run(_gmic(manifest, gmic_weights, matched_baseline=False), "known-bad")
    assert execute_run(run_id) == "done"
    expected = load_scores(run_id)
    with pytest.raises(RunError, match="done, 2 errors; retry its errors"):
        resume_run(run_id, start_runner=False)
    # A kill lost the rows of one good image (same batch as the bad one); the garbage file is now a real
    # image: resuming recomputes the good image (same scores) and does not read the bad one again.
    good = str(expected["image_id"].iloc[0])
    with sqlite3.connect(RunStore.open(run_id).path) as con:
        con.execute("DELETE FROM scores WHERE unit = ?", (good,))
    con.close()
    df = pd.read_csv(manifest)
    shutil.copy(df.loc[0, "path"], df.loc[1, "path"])
    RunStore.open(run_id).set(status="interrupted")
    assert execute_run(run_id) == "done"
    st = run_status(run_id)
    assert (st.done, st.errors) == (5 * 2, 2)
    pd.testing.assert_frame_equal(load_scores(run_id), expected, check_exact=True)
    # asked to retry: the image is scored now, and its error rows are gone
    resume_run(run_id, start_runner=False, retry_errors=True)
    assert run_status(run_id).status == "queued"
    assert execute_run(run_id) == "done"
    st = run_status(run_id)
    assert (st.status, st.done, st.errors, st.label) == ("done", 12, 0, "done")
    assert bad in set(load_scores(run_id)["image_id"])


def test_dmv_exam_with_an_unreadable_view(data_dir, tiny_manifest, dmv_weights, tmp_path):  # noqa: F811
    manifest, (bad,) = _cohort_with_garbage(tiny_manifest, tmp_path, [5])  # a view of the second exam
    cfg = RunConfig(
        model="dmv", manifest=str(manifest), weights=str(dmv_weights), device="cpu",
        perturbations={"shuffle": [5]}, batch_size=2, max_images=8,
    )  # fmt: skip
    run_id = create_run(cfg)
    assert execute_run(run_id) == "done"
    st = run_status(run_id)
    assert (st.done, st.errors, st.total) == (4, 4, 8)  # 2 exams x 2 breasts x (none, shuffle)
    errors = run_errors(run_id)
    assert set(errors["image_id"]) == {bad} and set(errors["laterality"]) == {"L", "R"}
    assert errors["exam_id"].nunique() == 1 and (errors["view"] == "").all()


def _fill(store: RunStore, n: int = 3000) -> None:
    """Many score rows, so that the database spans many pages."""
    from core.metrics import SCORE_COLUMNS

    rows = [
        dict.fromkeys(SCORE_COLUMNS, 0.5)
        | {
            "image_id": f"img{i}",
            "view": "CC",
            "exam_id": f"e{i}",
            "condition": "none|0|0",
            "unit": f"img{i}",
        }
        for i in range(n)
    ]
    store.add_scores(rows)


def _scribble(path: Path, offset: int, size: int, seed: int = 0) -> None:
    """Random bytes written into a closed database file."""
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())


def test_random_bytes_in_a_store(data_dir, capsys):
    from core.cli import main

    cfg = RunConfig(model="gmic", manifest="tiny", weights="random")
    damaged = create_run(cfg, "scribbled")
    store = RunStore.open(damaged)
    _fill(store)
    store.set(status="cancelled", total="6000")
    good = create_run(cfg, "fine")
    _scribble(store.path, 4096 * 6, 4096 * 4)
    with pytest.raises(RunError, match="scribbled: the run store .* is damaged"):
        resume_run(damaged, start_runner=False)
    with pytest.raises(RunError, match="is damaged"):
        execute_run(damaged)
    runs = list_runs().set_index("run_id")
    assert runs.loc[damaged, "status"] == "damaged" and "malformed" in runs.loc[damaged, "problem"]
    assert runs.loc[good, "status"] == "queued"
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    assert "fine" in out and "scribbled: damaged:" in out
    # a damaged store can be deleted
    from core.runs import delete_run

    delete_run(damaged)
    assert damaged not in set(list_runs()["run_id"])


def test_runner_moves_on_past_damaged_stores(data_dir):
    cfg = RunConfig(model="gmic", manifest="tiny", weights="random", max_images=1)
    first = create_run(cfg, "a-scribbled")  # queued first
    second = create_run(cfg, "b-bad-json")
    last = create_run(cfg, "c-good")
    _scribble(RunStore.open(first).path, 0, 100)  # even the header: not a database any more
    RunStore.open(second).set(config="{not json")
    assert runner_loop(idle_exit_s=0.5) == 1
    runs = list_runs().set_index("run_id")
    assert runs.loc[last, "status"] == "done"
    assert runs.loc[first, "status"] == runs.loc[second, "status"] == "damaged"
    assert "not valid JSON" in runs.loc[second, "problem"]
    assert "not a database" in runs.loc[first, "problem"]
    with pytest.raises(RunError, match="not valid JSON"):
        run_status(second)


def test_invalid_json_in_meta_is_listed_as_damaged(data_dir, capsys):
    from core.cli import main

    cfg = RunConfig(model="gmic", manifest="tiny", weights="random")
    ok, bad, bad_total = create_run(cfg, "ok"), create_run(cfg, "bad"), create_run(cfg, "bad-total")
    RunStore.open(bad).set(config='{"model": "gmic", ')
    RunStore.open(bad_total).set(total="lots")
    runs = list_runs().set_index("run_id")
    assert runs.loc[ok, "status"] == "queued"
    assert runs.loc[bad, "status"] == runs.loc[bad_total, "status"] == "damaged"
    assert "'total' is not a number" in runs.loc[bad_total, "problem"]
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "bad: damaged:" in out


def test_a_reused_pid_is_not_a_running_worker(data_dir):
    run_id = create_run(RunConfig(model="gmic", manifest="tiny", weights="random"))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        RunStore.open(run_id).set(status="running", pid=str(sleeper.pid))
        st = run_status(run_id)
        assert st.status == "interrupted"  # a live process, but not this run's worker
        resume_run(run_id, start_runner=False)  # so it may resume, and be deleted
        assert run_status(run_id).status == "queued"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_weights_are_checked_before_the_run_is_queued(
    data_dir,
    tiny_manifest,  # noqa: F811
    gmic_weights,  # noqa: F811
    dmv_weights,  # noqa: F811
    tmp_path,
    capsys,
):
    from core.cli import main

    base = dict(model="gmic", manifest=str(tiny_manifest), device="cpu")
    with pytest.raises(RunError, match="nope.pt: weights file not found"):
        create_run(RunConfig(**base, weights=str(tmp_path / "nope.pt")))
    with pytest.raises(RunError, match="these are dmv weights, not gmic"):
        create_run(RunConfig(**base, weights=str(dmv_weights)))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 300)
    with pytest.raises(RunError, match="junk.pt: not a readable PyTorch weight file"):
        create_run(RunConfig(**base, weights=str(junk)))
    with pytest.raises(RunError, match="not a regular file"):
        create_run(RunConfig(**base, weights=str(tmp_path)))
    assert list_runs().empty  # nothing was queued
    create_run(RunConfig(**base, weights=str(gmic_weights)))
    create_run(RunConfig(**base, weights="random"))
    # the command line refuses at once, with the message
    path = RunConfig(**base, weights=str(tmp_path / "nope.pt")).save(tmp_path / "run.toml")
    assert main(["run", str(path), "--submit"]) == 2
    assert "nope.pt: weights file not found" in capsys.readouterr().err
    assert len(list_runs()) == 2


def test_runs_from_the_app_read_inside_the_allowed_roots(data_dir, tiny_manifest, gmic_weights):  # noqa: F811
    roots = [str(data_dir)]
    with pytest.raises(AccessError, match="outside the folders"):
        create_run(RunConfig(model="gmic", manifest="tiny", weights=str(gmic_weights)), roots=roots)
    with pytest.raises(AccessError, match="outside the folders"):
        create_run(RunConfig(model="gmic", manifest=str(tiny_manifest), weights="random"), roots=roots)
    run_id = create_run(RunConfig(model="gmic", manifest="tiny", weights="random", max_images=1), roots=roots)
    assert json.loads(RunStore.open(run_id).get("allowed_roots")) == roots


def test_progress_is_written_per_image_and_created_time_is_kept(data_dir, tiny_manifest, gmic_weights):  # noqa: F811
    cfg = _gmic(tiny_manifest, gmic_weights, matched_baseline=False, batch_size=4, max_images=6)
    run_id = create_run(cfg)
    created = run_status(run_id).created
    assert execute_run(run_id) == "done"
    with sqlite3.connect(RunStore.open(run_id).path) as con:
        marks = [d for (d,) in con.execute("SELECT done FROM progress ORDER BY rowid")]
    con.close()
    assert marks == [0, 2, 4, 6, 8, 10, 12]  # the worker's start, then every image (2 conditions each)
    st = run_status(run_id)
    assert (st.n_items, st.item_rows, st.items_done, st.item_kind) == (6, 2, 6, "images")
    assert st.rate is not None and st.item_rate == pytest.approx(st.rate / 2)
    # cancelled while queued, then resumed: the creation time stays, the queue time moves
    again = create_run(cfg)
    first = run_status(again)
    cancel_run(again)
    time.sleep(0.01)
    resume_run(again, start_runner=False)
    st = run_status(again)
    assert st.created == first.created and st.queued > first.queued
    assert created is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX locks")
def test_the_lock_dies_with_its_process(data_dir):
    """A process holding the run's lock makes it running; SIGKILL (no clean-up at all) frees it."""
    import signal
    import sys

    run_id = create_run(RunConfig(model="gmic", manifest="tiny", weights="random"))
    store = RunStore.open(run_id)
    code = (
        "import sys, time\nfrom core.runs import lock\n"
        f"with lock.hold({str(store.folder)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        store.set(status="running", pid=str(proc.pid))
        assert run_status(run_id).status == "running"
        with pytest.raises(RunError, match="already running"):
            execute_run(run_id)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert run_status(run_id).status == "interrupted"


def test_a_failed_forward_pass_fails_only_the_item_that_cannot_be_scored(tiny_manifest, gmic_weights):  # noqa: F811
    """A forward pass that fails (out of memory on a batch, say) takes down no item by itself: the items
    are scored one at a time, and only one that still fails gets error records (stage ``score``)."""
    import torch

    from core.manifest import read_manifest
    from core.models import create_model
    from core.runs import base_conditions, score_batch, work_items

    class Fragile(torch.nn.Module):
        """The real model, failing on batches of several inputs and on its third single input."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.spec, self.singles = inner, inner.spec, 0

        def forward(self, x):
            if x.shape[0] > 1:
                raise RuntimeError("out of memory (batch)")
            self.singles += 1
            if self.singles == 3:
                raise RuntimeError("out of memory (single)")
            return self.inner(x)

    model = create_model("gmic", str(gmic_weights), device="cpu")
    items, _ = work_items(read_manifest(tiny_manifest), "gmic", max_images=4)
    conds = base_conditions(RunConfig(model="gmic", manifest="tiny"))
    got = score_batch(Fragile(model), items, conds, weights_label="w", batch_size=4)
    assert [e["image_id"] for e in got.errors] == [items[2].key]
    assert (
        got.errors[0]["stage"] == "score"
        and "RuntimeError: out of memory (single)" in got.errors[0]["message"]
    )
    singles = score_batch(model, items, conds, weights_label="w", batch_size=1)
    assert got.rows == [r for r in singles.rows if r["unit"] != items[2].key]
