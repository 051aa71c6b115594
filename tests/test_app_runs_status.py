"""AppTest of the Runs page keeping up: weights and folders checked before a run starts, progress per image
with rate and ETA from a real worker, the images a run could not score, damaged stores, "Open in Results",
banners that do not outlive what they say, and the runs token."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.app_support import errors, open_page, run, tiny_cohort_env


@pytest.fixture(scope="module", autouse=True)
def tiny_cohort(tmp_path_factory):
    yield from tiny_cohort_env(tmp_path_factory.mktemp("runs-status-data"))


@pytest.fixture(scope="module")
def data(tiny_cohort):
    """The data folder (an allowed root), with small GMIC and DMV weights saved in it."""
    from tests.test_runs import _save

    folder = tiny_cohort.parents[2]
    cfg = {"input_size": [192, 128], "crop_shape": [48, 48], "K": 2, "percent_t": 0.05, "spacing_mm": 0.4}
    _save("gmic", folder / "gmic-small.pt", cfg)
    _save("dmv", folder / "dmv-small.pt", {"input_size": [192, 128], "spacing_mm": 0.4})
    return folder


@pytest.fixture()
def token(monkeypatch):
    monkeypatch.setenv("MAMMO_RUNS_TOKEN", "s3cret-token")
    return "s3cret-token"


def _garbage_run(folder, name: str) -> str:
    """A finished GMIC run over 4 tiny images, the second of which is random bytes."""
    from core.runs import RunConfig, create_run, execute_run

    df = pd.read_csv(folder / "cohorts" / "tiny-0" / "manifest.csv")
    df["path"] = [str(folder / "cohorts" / "tiny-0" / p) for p in df["path"]]
    junk = folder / f"{name}-junk.dcm"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 9000, dtype=np.uint8).tobytes())
    df.loc[1, "path"] = str(junk)
    df.to_csv(folder / f"{name}.csv", index=False)
    cfg = RunConfig(
        model="gmic", manifest=str(folder / f"{name}.csv"), weights=str(folder / "gmic-small.pt"),
        device="cpu", perturbations={"lowpass": [4]}, max_images=4, name=name,
    )  # fmt: skip
    run_id = create_run(cfg)
    assert execute_run(run_id) == "done"
    return run_id


def test_weights_are_checked_at_once(data, tmp_path):
    state = {"run_weights": "file...", "run_weights_path": str(data / "missing.pt")}
    at = run(open_page("Runs", state))
    assert any("missing.pt: weights file not found" in e for e in errors(at))
    assert at.button(key="run_start").disabled
    at.text_input(key="run_weights_path").set_value(str(data / "dmv-small.pt"))
    run(at)
    assert any("these are dmv weights, not gmic" in e for e in errors(at))
    assert at.button(key="run_start").disabled
    at.radio(key="run_model").set_value("dmv")
    run(at)
    assert not errors(at) and not at.button(key="run_start").disabled
    # a file outside the allowed folders is refused without saying whether it exists
    (tmp_path / "w.pt").write_bytes((data / "gmic-small.pt").read_bytes())
    at.text_input(key="run_weights_path").set_value(str(tmp_path / "w.pt"))
    run(at)
    assert any("outside the folders this app may read" in e for e in errors(at))
    assert at.button(key="run_start").disabled


def test_errors_are_listed_and_a_finished_run_opens_in_results(data):
    run_id = _garbage_run(data, "garbage-app")
    at = run(open_page("Runs", {"runs_pick": run_id}))
    assert not errors(at)
    table = at.dataframe[0].value
    assert table.set_index("run_id").loc[run_id, "status"] == "done, 2 errors"
    warning = [w.value for w in at.warning if "could not be scored" in w.value]
    assert warning and warning[0].startswith(f"{run_id}: 2 error rows: 1 image(s)")
    (listed,) = [d.value for d in at.dataframe if "message" in d.value.columns]
    assert len(listed) == 1 and listed["conditions"].iloc[0] == 2
    assert "not a recognised image file" in listed["message"].iloc[0]
    assert listed["image"].iloc[0] == pd.read_csv(data / "garbage-app.csv")["image_id"].iloc[1]
    assert at.button(key="runs_resume").disabled and not at.button(key="runs_retry").disabled
    at.button(key="runs_open").click()
    run(at)
    assert [h.value for h in at.header] == ["Results"]
    assert at.selectbox(key="res_run").value == run_id
    assert any("2 error rows" in o and run_id in o for o in at.selectbox(key="res_run").options)


def test_a_damaged_store_is_listed_with_the_others(data):
    from core.runs import RunConfig, RunStore, create_run, list_runs

    good = create_run(RunConfig(model="gmic", manifest="tiny", weights="random", name="still-fine"))
    bad = create_run(RunConfig(model="gmic", manifest="tiny", weights="random", name="scribbled"))
    with open(RunStore.open(bad).path, "r+b") as fh:
        fh.write(b"\x13" * 100)
    at = run(open_page("Runs", {"runs_pick": bad}))
    statuses = at.dataframe[0].value.set_index("run_id")["status"]
    assert statuses[bad] == "damaged" and statuses[good] == "queued"
    assert any(e.startswith("Damaged store:") and bad in e and "not a database" in e for e in errors(at))
    assert at.button(key="runs_resume").disabled and at.button(key="runs_open").disabled
    at.button(key="runs_delete").click()
    run(at)
    assert bad not in set(list_runs()["run_id"])
    from core.runs import cancel_run

    cancel_run(good)


@pytest.mark.slow
def test_progress_per_image_from_a_real_worker(data):
    """A worker process scoring images one by one: the page shows images done, rate and ETA."""
    from core.runs import RunConfig, cancel_run, create_run, run_status

    cfg = RunConfig(
        model="gmic", manifest="tiny", weights=str(data / "gmic-small.pt"), device="cpu", batch_size=1,
        perturbations={"lowpass": [1, 2, 3, 4, 5], "highpass": [3, 4], "noise": [4, 5]}, name="progress",
    )  # fmt: skip
    run_id = create_run(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "run", "--resume", run_id, "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ}, start_new_session=True,
    )  # fmt: skip
    try:
        t0 = time.monotonic()
        while run_status(run_id).items_done < 2:
            assert proc.poll() is None and time.monotonic() - t0 < 300, run_status(run_id)
            time.sleep(0.1)
        at = run(open_page("Runs", {"runs_pick": run_id}))
        texts = [p.proto.text for p in at.get("progress")]
        mine = [t for t in texts if t.startswith(run_id)]
        assert mine, texts
        assert run_status(run_id).status == "running", "the run ended before the page was drawn"
        assert "/24 images" in mine[0] and ("images/s" in mine[0] or "s per image" in mine[0])
        assert "ETA 0:" in mine[0] and "rows" in mine[0]
        at.button(key=f"cancel_{run_id}").click()
        run(at)
        assert proc.wait(timeout=120) == 3  # cancelled between images
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run_status(run_id).status == "cancelled"
    cancel_run(run_id)


@pytest.mark.slow
def test_the_queued_banner_goes_when_the_run_is_no_longer_queued(data):
    from core.runs import list_runs, run_status

    state = {
        "run_weights": "file...", "run_weights_path": str(data / "gmic-small.pt"), "run_max_images": 1,
        "run_name": "banner",
    }  # fmt: skip
    at = run(open_page("Runs", state))
    at.button(key="run_start").click()
    run(at)
    runs = list_runs()
    run_id = runs[runs["name"] == "banner"]["run_id"].iloc[0]
    assert any(f"Queued {run_id}" in s.value for s in at.success)  # the runner has not started it yet
    t0 = time.monotonic()
    while run_status(run_id).status in ("queued", "running"):
        assert time.monotonic() - t0 < 300, run_status(run_id)
        time.sleep(0.2)
    run(at)
    assert run_status(run_id).status == "done"
    assert not any("Queued" in s.value for s in at.success)
    assert not at.button(key="runs_open").disabled


def test_runs_token_from_the_environment(data, token):
    from core.runs import list_runs

    at = run(open_page("Runs", {"run_weights": "random", "run_max_images": 1, "run_name": "token-test"}))
    assert at.sidebar.text_input(key="runs_token").label == "Runs token"
    assert at.button(key="run_start").disabled
    assert any("Enter the runs token" in i.value for i in at.info)
    at.sidebar.text_input(key="runs_token").set_value("wrong")
    run(at)
    assert at.button(key="run_start").disabled and any("Wrong runs token" in i.value for i in at.info)
    at.sidebar.text_input(key="runs_token").set_value(token)
    run(at)
    assert not at.button(key="run_start").disabled
    assert not any("runs token" in i.value for i in at.info)
    # a click sent with a wrong token starts nothing
    at.button(key="run_start").click()
    at.sidebar.text_input(key="runs_token").set_value("wrong")
    run(at)
    assert "token-test" not in set(list_runs()["name"])


def test_runs_token_guards_delete_and_import(data, token):
    from core.runs import list_runs

    run_id = _garbage_run(data, "guarded")
    at = run(open_page("Runs", {"runs_pick": run_id}))
    assert at.button(key="runs_delete").disabled and at.button(key="runs_retry").disabled
    assert any("Enter the runs token" in c.value for c in at.caption)
    at.sidebar.text_input(key="runs_token").set_value(token)
    run(at)
    at.button(key="runs_delete").click()
    at.sidebar.text_input(key="runs_token").set_value("")  # a click sent without the token does nothing
    run(at)
    assert run_id in set(list_runs()["run_id"])
    at.sidebar.text_input(key="runs_token").set_value(token)
    run(at)
    at.button(key="runs_delete").click()
    run(at)
    assert run_id not in set(list_runs()["run_id"])
    res = run(open_page("Results"))
    assert res.button(key="res_import").disabled


def test_served_beyond_this_machine_without_a_token(data, monkeypatch):
    from streamlit import config

    monkeypatch.delenv("MAMMO_RUNS_TOKEN", raising=False)
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = run(open_page("Runs", {"run_weights": "random"}))
        assert at.button(key="run_start").disabled
        assert any("no runs token is set" in i.value for i in at.info)
    finally:
        config.set_option("server.address", before)
    at = run(open_page("Runs", {"run_weights": "random"}))  # back on loopback: no prompt
    assert not at.button(key="run_start").disabled
    assert not [t for t in at.sidebar.text_input if t.key == "runs_token"]  # no token box
