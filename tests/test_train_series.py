"""Training for the study's Figures 2 and 4: checkpoint series (``--save-every``), GMIC from a given trunk
(``--init-trunk``) and train-time low-pass filtering that reaches the model's input in every mode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.cli import main
from core.metrics.parameters import checkpoint_of
from core.models import ModelError, create_model
from core.training import TrainOptions, command_line, load_items, parse_augment, train
from core.training.options import used_crops, validation_crop
from core.training.series import epoch_path

SMALL = dict(spacing_mm=0.5, input_size={"CC": (160, 112), "MLO": (160, 112)}, threads=1, batch_size=4)


@pytest.fixture(scope="module")
def gmic_start(tiny_data, tmp_path_factory) -> TrainOptions:
    """A GMIC trained one short epoch in float32 (its file at ``.out``): the start of the trunk tests."""
    base = TrainOptions(
        arch="gmic", out=str(tmp_path_factory.mktemp("start") / "g.pt"), cohort=str(tiny_data), epochs=1,
        samples_per_epoch=8, half=False, **SMALL,
    )  # fmt: skip
    train(base, log=lambda _: None)
    return base


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_epoch_path_follows_the_results_convention(tmp_path):
    assert epoch_path("runs/gmic-fig2.pt", 3).name == "gmic-fig2-epoch03.pt"
    assert epoch_path("gmic-fig2", 12).name == "gmic-fig2-epoch12.pt"
    assert epoch_path(tmp_path / "a.b.pth", 1) == tmp_path / "a.b-epoch01.pth"
    assert checkpoint_of(epoch_path("gmic-fig2.pt", 7).name) == ("gmic-fig2", 7)
    assert used_crops(1, 1.0) == [0] and used_crops(3, 0.0) == [0]
    assert used_crops(3, 0.5) == [0, 1, 2] and used_crops(2, 1.0) == [1]
    one = TrainOptions(arch="gmic", out="x.pt", augment=["lowpass:0.5"], augment_prob=1.0)
    assert validation_crop(one) == 1
    assert validation_crop(dataclasses.replace(one, augment_prob=0.5)) == 0
    assert validation_crop(dataclasses.replace(one, augment=["lowpass:0.5", "noise:800"])) == 0


@pytest.mark.slow
def test_save_every_writes_the_series_of_a_whole_window_run(tiny_data, tmp_path, capsys):
    """Every epoch's checkpoint beside --out, loadable, named by the convention, recorded; the kept (best)
    epoch's file holds exactly the final weights."""
    out = tmp_path / "gmic-run.pt"
    code = main(
        ["train", "gmic", "--cohort", str(tiny_data), "--epochs", "3", "--seed", "1", "--out", str(out),
         "--spacing-mm", "1.0", "--input-size", "96x64", "--batch-size", "4", "--threads", "1",
         "--samples-per-epoch", "8", "--patience", "5", "--save-every", "1"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    files = [tmp_path / f"gmic-run-epoch0{e}.pt" for e in (1, 2, 3)]
    assert all(f.is_file() and f"wrote {f}" in printed for f in files)
    final = create_model("gmic", weights=out, device="cpu")
    record = final.spec.config["training"]
    assert record["save_every"] == 1 and record["checkpoints"] == [f.name for f in files]
    assert "--save-every 1" in record["command"]
    import csv

    with open(tmp_path / "gmic-run-curves.csv") as fh:
        val_aucs = {int(r["epoch"]): r["val_auc"] for r in csv.DictReader(fh)}
    states = []
    for epoch, path in enumerate(files, start=1):
        model = create_model("gmic", weights=path, device="cpu")
        info = model.spec.config["training"]
        assert info["run"] == "gmic-run.pt" and info["epoch"] == epoch and info["save_every"] == 1
        expected = val_aucs[epoch]
        assert (
            (info["val_auc"] is None) if expected == "" else info["val_auc"] == pytest.approx(float(expected))
        )
        assert model.spec.input_size == final.spec.input_size and model.spec.is_demo
        assert checkpoint_of(path.name) == ("gmic-run", epoch)
        states.append(model.state_dict())
    # the epochs differ (training moved the weights) and the best one is the final checkpoint
    assert not _states_equal(states[0], states[2])
    assert _states_equal(states[record["best_epoch"] - 1], final.state_dict())


@pytest.mark.slow
def test_save_every_in_the_frozen_trunk_modes(tiny_data, tmp_path):
    """GMIC on a frozen trunk (every 2nd of 3 epochs), DMV heads on a frozen trunk and dense pretraining
    write their series too; the validation AUC stored with each file is the one of that epoch's history."""
    base = TrainOptions(
        arch="gmic", out=str(tmp_path / "g.pt"), cohort=str(tiny_data), epochs=1, samples_per_epoch=8, **SMALL
    )
    train(base, log=lambda _: None)
    frozen = dataclasses.replace(
        base, out=str(tmp_path / "gf.pt"), init=base.out, freeze_trunk=True, unfreeze_stages=1,
        window_samples=1, epochs=3, patience=5, save_every=2,
    )  # fmt: skip
    result = train(frozen, log=lambda _: None)
    # epoch 0 is the --init state the run validated first; then every 2nd epoch
    assert result.checkpoints == [tmp_path / "gf-epoch00.pt", tmp_path / "gf-epoch02.pt"]
    assert not (tmp_path / "gf-epoch01.pt").exists() and not (tmp_path / "gf-epoch03.pt").exists()
    info = create_model("gmic", weights=result.checkpoints[1]).spec.config["training"]
    assert info["epoch"] == 2 and info["val_auc"] == result.history[2]["val_auc"]  # history[0]: epoch 0
    start = create_model("gmic", weights=result.checkpoints[0], device="cpu").state_dict()
    assert _states_equal(start, create_model("gmic", weights=base.out, device="cpu").state_dict())

    dmv = TrainOptions(
        arch="dmv", out=str(tmp_path / "d.pt"), cohort=str(tiny_data), epochs=2, init_trunk=base.out,
        freeze_trunk=True, test_samples=1, window_samples=1, patience=5, save_every=1, **SMALL,
    )  # fmt: skip
    result = train(dmv, log=lambda _: None)
    assert result.checkpoints == [tmp_path / "d-epoch01.pt", tmp_path / "d-epoch02.pt"]
    d2 = create_model("dmv", weights=result.checkpoints[1], device="cpu")
    assert d2.spec.config["training"]["val_auc"] == result.history[1]["val_auc"]
    final = create_model("dmv", weights=dmv.out, device="cpu")
    best = final.spec.config["training"]["best_epoch"]
    best_state = create_model("dmv", weights=result.checkpoints[best - 1], device="cpu").state_dict()
    assert _states_equal(best_state, final.state_dict())

    dense = dataclasses.replace(
        base, out=str(tmp_path / "dense.pt"), epochs=2, patch_size=64, dense_target=True, save_every=1
    )
    result = train(dense, log=lambda _: None)
    assert [p.name for p in result.checkpoints] == ["dense-epoch01.pt", "dense-epoch02.pt"]
    assert create_model("gmic", weights=result.checkpoints[1]).spec.config["training"]["epoch"] == 2


def test_bad_save_every_is_refused(tiny_data, tmp_path, capsys):
    with pytest.raises(ModelError, match="--save-every"):
        train(TrainOptions(arch="gmic", out=str(tmp_path / "x.pt"), cohort=str(tiny_data), save_every=-1))
    with pytest.raises(ModelError, match="--augment-prob"):
        train(TrainOptions(arch="gmic", out=str(tmp_path / "x.pt"), cohort=str(tiny_data), augment_prob=2))
    assert main(["train", "gmic", "--out", str(tmp_path / "x.pt"), "--save-every", "-2",
                 "--cohort", str(tiny_data)]) != 0  # fmt: skip
    assert "--save-every" in capsys.readouterr().err


@pytest.mark.slow
def test_gmic_from_a_trunk(gmic_start, tmp_path):
    """--init-trunk for GMIC copies the global network and leaves the rest random; with --freeze-trunk the
    frozen stages stay those of the trunk."""
    base = gmic_start
    opts = dataclasses.replace(
        base, out=str(tmp_path / "t.pt"), init_trunk=base.out, freeze_trunk=True, unfreeze_stages=1,
        window_samples=0,
    )  # fmt: skip
    result = train(opts, log=lambda _: None)
    assert [r["epoch"] for r in result.history] == [1]  # no epoch 0: the top starts random
    g = create_model("gmic", weights=base.out).state_dict()
    t = create_model("gmic", weights=opts.out).state_dict()
    frozen = "ds_net.layer_list.2.0.conv1.weight"
    torch.testing.assert_close(t[frozen], g[frozen])
    top = "left_postprocess_net.gn_conv_last.weight"
    assert top in t and not torch.allclose(t[top], g[top])
    assert "--init-trunk" in command_line(opts)
    with pytest.raises(ModelError, match="g-curves.csv"):  # not weights: an error naming the file
        train(dataclasses.replace(opts, init_trunk=str(tmp_path / "g-curves.csv")))


def _high_share(window: np.ndarray, cutoff: float, spacing_mm: float) -> float:
    """Share of a window's spectral power (mean removed) above ``cutoff`` cycles/mm."""
    power = np.abs(np.fft.fft2(window - window.mean())) ** 2
    fr = np.fft.fftfreq(window.shape[0], spacing_mm)[:, None]
    fc = np.fft.fftfreq(window.shape[1], spacing_mm)[None, :]
    return float(power[np.hypot(fr, fc) > cutoff].sum() / power.sum())


def _filtered_crop(manifest, item, spec, radius: float) -> np.ndarray:
    """The model crop of ``item``'s image (a row of ``manifest``) low-passed at ``radius`` cycles/mm,
    computed from the file with the clean image's geometry."""
    from core.imaging import load_mammogram
    from core.manifest import read_manifest
    from core.models.inputs import crop_for_model
    from core.perturb import lowpass

    row = read_manifest(manifest).set_index("image_id").loc[item.image_id]
    mammo = load_mammogram(row["path"], spacing_mm=(row["spacing_row_mm"], row["spacing_col_mm"]))
    low = dataclasses.replace(mammo, pixels=lowpass(mammo.pixels, mammo.spacing_mm, radius))
    return crop_for_model(low, spec, geometry=item.geometry, view=item.view)[0]


def _filtered_window(manifest, item, spec, radius: float, rng=None) -> np.ndarray:
    """The model window of :func:`_filtered_crop` (deterministic, or with the window noise of ``rng``)."""
    from core.models.inputs import window_from_crop

    crop = _filtered_crop(manifest, item, spec, radius)
    return window_from_crop(crop, item.geometry, spec, rng=rng, augment=rng is not None)


@pytest.mark.slow
def test_lowpass_training_reaches_the_model_input(gmic_start, tiny_data, tmp_path):
    """--augment lowpass:R --augment-prob 1 (the study's Figure 4): with a frozen-trunk cache the windows
    and the trunk outputs the trained top receives are those of the filtered image (the filter is applied
    before the trunk), the clean crops are not cached, validation uses the filtered windows; on live whole
    windows the model's input is the filtered image's window with the sample's window noise."""
    from core.training.frozen import column_prefix
    from core.training.loop import _Training
    from core.training.windows import crop_index

    radius = 0.25  # cycles/mm, inside the band of 0.5 mm model pixels (Nyquist 1.0)
    base = gmic_start
    opts = dataclasses.replace(
        base, out=str(tmp_path / "f.pt"), init=base.out, freeze_trunk=True, window_samples=0,
        augment=[f"lowpass:{radius}"], augment_prob=1.0,
    )  # fmt: skip
    run = _Training(opts, lambda _: None)
    assert run.cache.train[0] == [] and len(run.cache.train[1]) == 1  # crop 0 (clean) never drawn
    seen = []
    original = run.model.forward_from_global

    def spy(windows, features):
        seen.append((windows.detach().clone(), features.detach().clone()))
        return original(windows, features)

    run.model.forward_from_global = spy
    idx = np.array([0, 1, 2])
    run.batch_loss(idx, None)
    (windows, features), items = seen[0], [run.train_items[i] for i in idx]
    for k, item in enumerate(items):
        expected = _filtered_window(tiny_data, item, run.spec, radius)
        clean = _filtered_window(tiny_data, item, run.spec, 1e3)  # above every frequency: the clean window
        got = windows[k, 0].numpy()
        np.testing.assert_allclose(got, expected, atol=2e-2 * np.abs(expected).max())
        assert np.abs(got - clean).max() > 0.1 * np.abs(clean).max()
        assert _high_share(got, 1.5 * radius, 0.5) < 0.6 * _high_share(clean, 1.5 * radius, 0.5)
        with torch.inference_mode():
            trunk = column_prefix(run.model.ds_net, torch.from_numpy(expected)[None, None], 0)
        torch.testing.assert_close(features[k], trunk[0], atol=1e-3, rtol=1e-3)
    # validation uses the filtered windows too
    val = run.split["val"][0]
    np.testing.assert_allclose(
        run.cache.val_windows(0, 1)[0], _filtered_window(tiny_data, val, run.spec, radius), atol=1e-4
    )

    # live whole windows: each with its own window noise, drawn from a seed of the run's generator
    live = dataclasses.replace(opts, init=None, freeze_trunk=False)
    run = _Training(live, lambda _: None)
    inputs = []
    run.model.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach().clone()))
    state = run.rng.get_state()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as threads:
        run.batch_loss(idx, threads)
    replay = np.random.RandomState()
    replay.set_state(state)
    seeds = replay.randint(0, 2**31 - 1, size=len(idx))
    for k, (i, sd) in enumerate(zip(idx, seeds, strict=True)):
        rng = np.random.RandomState(sd)
        assert crop_index(run.train_items[i], rng, 1.0) == 1
        expected = _filtered_window(tiny_data, run.train_items[i], run.spec, radius, rng)
        np.testing.assert_allclose(inputs[0][k, 0].numpy(), expected, atol=1e-4 * np.abs(expected).max())
    items = load_items(tiny_data, run.spec, parse_augment(opts.augment), log=lambda _: None)
    assert all(len(it.crops) == 2 for it in items)
