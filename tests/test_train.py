"""``mammo-robust train`` on the tiny synthetic cohort: short runs that write loadable checkpoints."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from core.cli import main
from core.models import ModelError, create_model
from core.training import TrainOptions, command_line, load_items, parse_augment, train

SMALL = ["--spacing-mm", "1.0", "--input-size", "96x64", "--batch-size", "4", "--threads", "1"]


@pytest.mark.slow
def test_train_gmic_one_epoch_writes_loadable_checkpoint(tiny_data, tmp_path, capsys):
    out = tmp_path / "gmic-tiny.pt"
    code = main(
        [
            "train",
            "gmic",
            "--cohort",
            str(tiny_data),
            "--epochs",
            "1",
            "--seed",
            "3",
            "--out",
            str(out),
            *SMALL,
            "--no-cache",
        ]
    )
    assert code == 0
    assert "test malignant AUC" in capsys.readouterr().out
    model = create_model("gmic", weights=out, device="cpu")
    spec = model.spec
    assert spec.is_demo and spec.spacing_mm == 1.0 and spec.input_size == {"CC": (96, 64), "MLO": (96, 64)}
    info = spec.config["training"]
    assert info["seed"] == 3 and info["epochs_run"] == 1 and info["n_test"] == 8
    assert info["test_auc"] is None or 0 <= info["test_auc"] <= 1
    assert "mammo-robust train gmic" in info["command"] and "--seed 3" in info["command"]
    with open(tmp_path / "gmic-tiny-curves.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and float(rows[0]["train_loss"]) > 0
    from PIL import Image

    assert Image.open(tmp_path / "gmic-tiny-curves.png").size == (900, 380)
    # the checkpoint predicts through the public path
    from core.imaging import load_mammogram
    from core.manifest import read_manifest
    from core.models.predict import predict_gmic

    row = read_manifest(tiny_data).iloc[0]
    probs = predict_gmic(model, [load_mammogram(row.path)])
    assert probs.shape == (1, 2) and np.all((probs >= 0) & (probs <= 1))


@pytest.mark.slow
def test_train_dmv_one_epoch_with_lowpass_augmentation(tiny_data, tmp_path):
    out = tmp_path / "dmv-tiny.pt"
    options = TrainOptions(
        arch="dmv",
        out=str(out),
        cohort=str(tiny_data),
        epochs=1,
        batch_size=2,
        spacing_mm=1.0,
        input_size={"CC": (96, 64), "MLO": (96, 64)},
        augment=["lowpass:1.0"],
        test_samples=2,
        threads=1,
    )
    result = train(options, log=lambda _: None)
    assert result.checkpoint == out and len(result.history) == 1
    model = create_model("dmv", weights=out, device="cpu")
    assert model.spec.variant == "image-only" and model.spec.config["training"]["augment"] == ["lowpass:1.0"]
    assert "--augment lowpass:1.0" in command_line(options)
    # the crop cache written by the run holds the clean and the low-passed crop of every image
    items = load_items(tiny_data, model.spec, parse_augment(["lowpass:1.0"]), log=lambda _: None)
    assert len(items) == 24 and all(len(it.crops) == 2 for it in items)
    clean, low = items[0].crops
    assert clean.shape == low.shape and not np.allclose(clean, low)


def test_train_is_seeded(tiny_data, tmp_path):
    def run(name, seed):
        opts = TrainOptions(
            arch="gmic",
            out=str(tmp_path / name),
            cohort=str(tiny_data),
            epochs=1,
            seed=seed,
            spacing_mm=1.0,
            input_size={"CC": (96, 64), "MLO": (96, 64)},
            samples_per_epoch=4,
            batch_size=4,
            threads=1,
            half=False,
        )
        train(opts, log=lambda _: None)
        return create_model("gmic", weights=tmp_path / name, device="cpu").state_dict()

    a, b, c = run("a.pt", 0), run("b.pt", 0), run("c.pt", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_bad_training_input(tiny_data, tmp_path, capsys):
    with pytest.raises(ModelError, match="unknown perturbation 'blur'"):
        parse_augment(["blur:1"])
    with pytest.raises(ModelError, match="name:parameter"):
        parse_augment(["lowpass:strong"])
    assert parse_augment(["lowpass:2", "noise:800"]) == [("lowpass", 2.0), ("noise", 800.0)]
    code = main(["train", "gmic", "--cohort", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x.pt")])
    assert code == 2 and "manifest not found" in capsys.readouterr().err
    with pytest.raises(ModelError, match="unknown architecture"):
        train(TrainOptions(arch="resnet", out=str(tmp_path / "x.pt"), cohort=str(tiny_data)))
    with pytest.raises(SystemExit):
        main(["train", "gmic", "--out", "x.pt", "--input-size", "big"])


@pytest.mark.parametrize("laterality, view", [("L", "CC"), ("R", "CC"), ("R", "MLO")])
def test_finding_coordinates_follow_resample_crop_flip_and_window(laterality, view):
    from core.imaging import Mammogram
    from core.models.inputs import crop_for_model, window_from_crop
    from core.models.inputs import window_offset as _window_offset
    from core.models.registry import build_model
    from core.training.data import _findings_in_crop

    h, w = 600, 400
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where(((yy - 300) / 260) ** 2 + (xx / 330) ** 2 < 1, 1000.0, 0.0).astype(np.float32)
    r, c = 380.0, 120.0
    img[int(r) - 2 : int(r) + 3, int(c) - 2 : int(c) + 3] = 4000.0  # a bright 0.5 mm spot
    if laterality == "R":
        img, c = img[:, ::-1].copy(), w - 1 - c
    m = Mammogram(img, spacing_mm=(0.1, 0.1), laterality=laterality, view=view)
    spec = build_model("gmic", config={"input_size": [96, 64], "spacing_mm": 0.5}).spec
    crop, geo = crop_for_model(m, spec)
    ((fr, fc, _),) = _findings_in_crop([(r, c, "malignant")], img.shape, geo)
    win = window_from_crop(crop, geo, spec)
    off_r, off_c = _window_offset(crop.shape, geo, spec)
    peak = np.unravel_index(np.argmax(win), win.shape)
    assert abs(peak[0] - (fr - off_r)) <= 1 and abs(peak[1] - (fc - off_c)) <= 1


def test_patch_training_and_frozen_trunk_dmv(tiny_data, tmp_path):
    small = dict(spacing_mm=0.5, input_size={"CC": (160, 112), "MLO": (160, 112)}, threads=1)
    gmic = TrainOptions(
        arch="gmic",
        out=str(tmp_path / "g.pt"),
        cohort=str(tiny_data),
        epochs=1,
        crop_shape=(40, 40),
        patch_size=64,
        samples_per_epoch=8,
        **small,
    )
    train(gmic, log=lambda _: None)
    dmv = TrainOptions(
        arch="dmv",
        out=str(tmp_path / "d.pt"),
        cohort=str(tiny_data),
        epochs=3,
        init_trunk=str(tmp_path / "g.pt"),
        freeze_trunk=True,
        test_samples=1,
        **small,
    )
    result = train(dmv, log=lambda _: None)
    assert 1 <= len(result.history) <= 3
    g = create_model("gmic", weights=tmp_path / "g.pt", device="cpu").state_dict()
    d = create_model("dmv", weights=tmp_path / "d.pt", device="cpu").state_dict()
    key = "layer_list.2.0.conv1.weight"
    # the frozen trunk is GMIC's global network in both columns (float16 storage)
    torch.testing.assert_close(d[f"four_view_resnet.cc.{key}"], g[f"ds_net.{key}"])
    torch.testing.assert_close(d[f"four_view_resnet.mlo.{key}"], g[f"ds_net.{key}"])
    info = create_model("dmv", weights=tmp_path / "d.pt", device="cpu").spec.config["training"]
    assert info["freeze_trunk"] and info["init_trunk"] == "g.pt" and "--freeze-trunk" in info["command"]
    with pytest.raises(ModelError, match="needs --init-trunk"):
        train(TrainOptions(arch="dmv", out=str(tmp_path / "x.pt"), cohort=str(tiny_data), freeze_trunk=True))


def test_crop_cache_in_worker_processes_equals_serial(tiny_data):
    from core.models.registry import build_model

    spec = build_model("gmic", config={"input_size": [96, 64], "spacing_mm": 1.0}).spec
    serial = load_items(tiny_data, spec, [], cache=False, workers=1, log=lambda _: None)
    pooled = load_items(tiny_data, spec, [], cache=False, workers=2, log=lambda _: None)
    assert [it.image_id for it in serial] == [it.image_id for it in pooled]
    for a, b in zip(serial, pooled, strict=True):
        assert (
            np.array_equal(a.crops[0], b.crops[0]) and a.geometry == b.geometry and a.findings == b.findings
        )


def test_worker_processes_after_a_parallel_torch_op(tiny_data):
    """Reading crops in worker processes after torch has run a parallel CPU op (as a run with
    --extra-train does once its model is built): forked workers used to hang in OpenMP; spawned ones
    finish. Run in a child process, so that a hang fails the test instead of stalling the suite."""
    import subprocess
    import sys

    script = f"""
import pathlib, torch, torch.nn.functional as F
from core.models.registry import build_model
from core.training import load_items
torch.set_num_threads(2)
F.interpolate(torch.rand(1, 1, 1500, 1000), size=(500, 333), mode="bilinear", antialias=True)
spec = build_model("gmic", config={{"input_size": [96, 64], "spacing_mm": 1.0}}).spec
items = load_items(pathlib.Path({str(tiny_data)!r}), spec, [], cache=False, workers=2, log=lambda _: None)
print(len(items))
"""
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail("load_items with 2 worker processes hung after a parallel torch op")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "24"


def test_init_continues_from_a_checkpoint_and_checks_its_geometry(tiny_data, tmp_path):
    def options(out: str, arch: str = "gmic", **changes) -> TrainOptions:
        small = dict(spacing_mm=1.0, input_size={"CC": (96, 64), "MLO": (96, 64)}, threads=1, half=False)
        return TrainOptions(
            arch=arch, out=str(tmp_path / out), cohort=str(tiny_data), epochs=1, **{**small, **changes}
        )

    start = str(tmp_path / "a.pt")
    train(options("a.pt"), log=lambda _: None)
    more = options("b.pt", init=start)
    result = train(more, log=lambda _: None)
    # epoch 0 is the starting checkpoint, scored on the validation split before any step
    assert [row["epoch"] for row in result.history] == [0, 1] and result.history[0]["train_loss"] is None
    assert "--init " in command_line(more)
    with pytest.raises(ModelError, match="spacing_mm"):
        train(options("c.pt", init=start, spacing_mm=0.5))
    with pytest.raises(ModelError, match="needs a dmv checkpoint"):
        train(options("d.pt", arch="dmv", init=start))


def test_training_device_and_schedule():
    from core.models.registry import resolve_device
    from core.training.objectives import lr_schedule as _schedule

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu:9")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")
    f = _schedule(1000)  # 50 warm-up steps, then cosine from 1 down to 0.02
    assert f(0) == pytest.approx(1 / 50) and f(49) == pytest.approx(1.0)
    assert f(525) == pytest.approx(0.51) and f(999) == pytest.approx(0.02, abs=1e-3)
    assert all(f(s) >= f(s + 1) for s in range(49, 1000))


def test_saliency_target_masks_follow_the_window_noise():
    """The finding masks are cut with the same window noise as the image: the window channel equals the plain
    augmented window, and the malignant mark sits on the bright finding, wherever the noise moved it."""
    from core.imaging import Mammogram
    from core.models.inputs import crop_for_model
    from core.models.registry import build_model
    from core.training.data import ImageItem, _findings_in_crop
    from core.training.objectives import saliency_target_loss
    from core.training.windows import finding_masks
    from core.training.windows import window as _window
    from core.training.windows import window_and_target as _window_and_target

    h, w = 600, 400
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where(((yy - 300) / 260) ** 2 + (xx / 330) ** 2 < 1, 1000.0, 0.0).astype(np.float32)
    img[378:383, 118:123] = 4000.0  # a bright 0.5 mm spot at (380, 120)
    m = Mammogram(img, spacing_mm=(0.1, 0.1), laterality="L", view="CC")
    spec = build_model("gmic", config={"input_size": [96, 64], "spacing_mm": 0.5}).spec
    crop, geo = crop_for_model(m, spec)
    found = _findings_in_crop([(380.0, 120.0, "malignant"), (200.0, 60.0, "benign")], img.shape, geo)
    item = ImageItem("i", "e", "L-CC", "train", 1, 1, [crop], geo, found)
    masks = finding_masks(item, spec)
    assert masks.shape == (*crop.shape, 2) and set(np.unique(masks)) == {0.0, 1.0}
    assert masks[..., 1].sum() == pytest.approx(np.pi * (4.5 / 0.5) ** 2, rel=0.2)  # a 4.5 mm disc
    for seed in range(4):
        stacked = _window_and_target(item, spec, np.random.RandomState(seed), 0.0)
        plain = _window(item, spec, np.random.RandomState(seed), 0.0, True)
        assert stacked.shape == (3, 96, 64)
        np.testing.assert_allclose(stacked[0], plain, atol=1e-5)
        peak = np.unravel_index(np.argmax(stacked[0]), plain.shape)
        assert stacked[2][peak] > 0.5 and stacked[1][peak] < 0.5

    # the loss: low for a map that lights exactly the target cells, high for the reverse
    masks_t = torch.zeros(1, 2, 96, 64)
    masks_t[0, 1, 40:50, 10:20] = 1.0
    good = torch.full((1, 2, 6, 4), 0.01)
    good[0, 1, 2:4, 0:2] = 0.99  # cells (rows 32-64, cols 0-32) hold the mark
    assert saliency_target_loss(good, masks_t) < 0.05
    assert saliency_target_loss(1 - good, masks_t) > 4.0
    # an image without findings: only the negative term
    assert saliency_target_loss(good, torch.zeros(1, 2, 96, 64)) == pytest.approx(
        -torch.log(1 - good).mean().item(), rel=1e-5
    )


@pytest.mark.slow
def test_saliency_target_training_and_its_checks(tiny_data, tmp_path):
    small = dict(spacing_mm=1.0, input_size={"CC": (96, 64), "MLO": (96, 64)}, threads=1)
    opts = TrainOptions(
        arch="gmic", out=str(tmp_path / "s.pt"), cohort=str(tiny_data), epochs=1, saliency_target=1.0, **small
    )
    result = train(opts, log=lambda _: None)
    assert np.isfinite(result.history[-1]["train_loss"]) and "--saliency-target 1.0" in command_line(opts)
    with pytest.raises(ModelError, match="--saliency-target is for GMIC on whole windows"):
        train(dataclasses.replace(opts, arch="dmv"))
    with pytest.raises(ModelError, match="--saliency-target is for GMIC on whole windows"):
        train(dataclasses.replace(opts, patch_size=32))


def test_ema_validates_and_keeps_the_moving_average(tiny_data, tmp_path, monkeypatch):
    """With --ema close to 1 the kept weights stay those after the first step while the raw ones move on."""
    raw_states = []
    update = torch.optim.swa_utils.AveragedModel.update_parameters

    def record(self, model):  # observes the raw weights each step, then averages as usual
        raw_states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return update(self, model)

    monkeypatch.setattr(torch.optim.swa_utils.AveragedModel, "update_parameters", record)
    small = dict(spacing_mm=1.0, input_size={"CC": (96, 64), "MLO": (96, 64)}, threads=1, half=False)
    opts = TrainOptions(
        arch="gmic",
        out=str(tmp_path / "e.pt"),
        cohort=str(tiny_data),
        epochs=1,
        batch_size=4,
        samples_per_epoch=12,
        lr=1e-3,
        ema=1 - 1e-9,
        **small,
    )
    train(opts, log=lambda _: None)
    assert len(raw_states) == 3 and "--ema 0.999999999" in command_line(opts)
    kept = create_model("gmic", weights=str(tmp_path / "e.pt"), device="cpu").state_dict()
    first, last = raw_states[0], raw_states[-1]
    floats = [k for k, v in first.items() if v.is_floating_point()]
    assert max((kept[k] - first[k]).abs().max().item() for k in floats) < 1e-5
    assert max((last[k] - first[k]).abs().max().item() for k in floats) > 1e-3
    with pytest.raises(ModelError, match="--ema must be in"):
        train(dataclasses.replace(opts, ema=1.0))


def test_frozen_trunk_dmv_with_unfrozen_last_stage(tiny_data, tmp_path):
    """--unfreeze-stages 1 trains the last column stage on cached trunk outputs: the early stages stay
    GMIC's, the last one moves, and the validation AUC of the training record is the one the whole saved
    model gives on the deterministic validation windows."""
    from core.training.data import exams as _exams
    from core.training.evaluation import dmv_auc as _dmv_auc
    from core.training.evaluation import dmv_labels as _dmv_labels
    from core.training.evaluation import dmv_val_probs as _dmv_val_probs

    small = dict(spacing_mm=0.5, input_size={"CC": (160, 112), "MLO": (160, 112)}, threads=1, half=False)
    gmic = TrainOptions(arch="gmic", out=str(tmp_path / "g.pt"), cohort=str(tiny_data), epochs=1, **small)
    train(gmic, log=lambda _: None)
    dmv = TrainOptions(
        arch="dmv",
        out=str(tmp_path / "d.pt"),
        cohort=str(tiny_data),
        epochs=2,
        lr=1e-2,
        init_trunk=str(tmp_path / "g.pt"),
        freeze_trunk=True,
        unfreeze_stages=1,
        test_samples=1,
        **small,
    )
    result = train(dmv, log=lambda _: None)
    assert "--unfreeze-stages 1" in command_line(dmv)
    g = create_model("gmic", weights=tmp_path / "g.pt", device="cpu").state_dict()
    model = create_model("dmv", weights=tmp_path / "d.pt", device="cpu")
    d = model.state_dict()
    for column in ("cc", "mlo"):
        early, last = "layer_list.3.1.conv2.weight", "layer_list.4.1.conv2.weight"
        torch.testing.assert_close(d[f"four_view_resnet.{column}.{early}"], g[f"ds_net.{early}"])
        assert not torch.allclose(d[f"four_view_resnet.{column}.{last}"], g[f"ds_net.{last}"])
    items = load_items(tiny_data, model.spec, [], log=lambda _: None)
    val = list(_exams([it for it in items if it.split == "val"]).values())
    labels = np.array([_dmv_labels(e) for e in val]).reshape(-1, 4)
    assert _dmv_auc(_dmv_val_probs(model, val, model.spec), labels) == pytest.approx(result.val_auc, abs=1e-4)
    with pytest.raises(ModelError, match="--unfreeze-stages is 1..5"):
        train(dataclasses.replace(dmv, unfreeze_stages=6))
    with pytest.raises(ModelError, match="--ema is for"):
        train(dataclasses.replace(dmv, ema=0.9))
    with pytest.raises(ModelError, match="--unfreeze-stages is 1..5"):
        train(dataclasses.replace(dmv, freeze_trunk=False, init_trunk=None))


def test_gmic_on_cached_trunk_outputs(tiny_data, tmp_path):
    """GMIC with --freeze-trunk trains its last global stage, saliency and local networks on cached
    windows and ds_net outputs; the early stages stay those of --init, and the recorded validation AUC is
    the saved model's own on the deterministic validation windows."""
    from core.training.evaluation import auc as _auc
    from core.training.evaluation import gmic_scores as _gmic_scores

    small = dict(spacing_mm=0.5, input_size={"CC": (160, 112), "MLO": (160, 112)}, threads=1, half=False)
    start = TrainOptions(arch="gmic", out=str(tmp_path / "a.pt"), cohort=str(tiny_data), epochs=1, **small)
    train(start, log=lambda _: None)
    opts = dataclasses.replace(
        start,
        out=str(tmp_path / "b.pt"),
        init=start.out,
        freeze_trunk=True,
        unfreeze_stages=1,
        lr=1e-2,
        ema=0.5,
    )
    result = train(opts, log=lambda _: None)
    assert "--freeze-trunk" in command_line(opts) and "--unfreeze-stages 1" in command_line(opts)
    b = create_model("gmic", weights=tmp_path / "b.pt", device="cpu")
    key = "ds_net.layer_list.3.1.conv2.weight"
    torch.testing.assert_close(b.state_dict()[key], create_model("gmic", weights=start.out).state_dict()[key])
    assert [r["epoch"] for r in result.history] == [0, 1] and np.isfinite(result.history[1]["train_loss"])
    items = load_items(tiny_data, b.spec, [], log=lambda _: None)
    val = [it for it in items if it.split == "val"]
    scores = _gmic_scores(b, val, b.spec, 4)  # the full model on live windows, not the cache
    assert _auc(scores[:, 1], [it.malignant for it in val]) == pytest.approx(result.val_auc, abs=1e-4)
    with pytest.raises(ModelError, match="needs --init"):
        train(dataclasses.replace(opts, init=None))
    with pytest.raises(ModelError, match="without --patch-size"):
        train(dataclasses.replace(opts, patch_size=32))
    targeted = train(
        dataclasses.replace(opts, out=str(tmp_path / "c.pt"), saliency_target=1.0), log=lambda _: None
    )
    assert np.isfinite(targeted.history[-1]["train_loss"])


def test_cached_saliency_targets_mark_the_findings(tiny_data):
    """The cached saliency targets of frozen-trunk GMIC training: the findings' cells, cut with the same
    window noise as the cached window, pooled to the saliency map; none for an image without findings."""
    from core.models.inputs import window_from_crop
    from core.models.registry import build_model
    from core.models.resnet import resnet22_output_size
    from core.training.frozen import prefix_outputs as _prefix_outputs

    size = {"CC": (160, 112), "MLO": (160, 112)}
    config = {"input_size": size, "spacing_mm": 0.5, "demo": True, "crop_shape": [40, 40], "K": 4}
    model = build_model("gmic", None, config)
    items = load_items(tiny_data, model.spec, [], log=lambda _: None)
    malignant = next(it for it in items if it.malignant)
    clean = next(it for it in items if not it.findings)
    map_size = resnet22_output_size(*size["CC"], first_layer_padding=3)
    for seed in (None, 7, 8):
        out, windows, targets = _prefix_outputs(
            model.ds_net, [malignant, clean], model.spec, 1, 0, [seed, seed], np.float32, map_size
        )
        assert targets.shape == (2, 2, *map_size) and targets.dtype == np.uint8 and out.shape[0] == 2
        assert targets[0, 1].sum() >= 1 and targets[1].sum() == 0
        rng = None if seed is None else np.random.RandomState(seed)
        plain = window_from_crop(
            malignant.crops[0], malignant.geometry, model.spec, rng=rng, augment=rng is not None
        )
        np.testing.assert_allclose(windows[0], plain, atol=1e-5)


def test_extra_training_cohorts_join_the_train_split_only(tiny_data, tmp_path):
    """--extra-train adds every image of another synthetic cohort (another seed) to the training split;
    validation and test stay the main cohort's, and a cohort that shares exams with it is refused."""
    from core.training.frozen import window_seeds as _window_seeds

    opts = TrainOptions(
        arch="gmic",
        out=str(tmp_path / "x.pt"),
        cohort="tiny",
        extra_train=["tiny-1"],
        epochs=1,
        spacing_mm=1.0,
        input_size={"CC": (96, 64), "MLO": (96, 64)},
        samples_per_epoch=4,
        batch_size=4,
        threads=1,
    )
    logs: list[str] = []
    train(opts, log=logs.append)
    spec = create_model("gmic", weights=opts.out, device="cpu").spec
    info = spec.config["training"]
    main_items = load_items(tiny_data, spec, [], log=lambda _: None)
    n_main_train = sum(it.split == "train" for it in main_items)
    assert info["n_train"] == n_main_train + 24  # the 6 four-view exams of tiny-1, all splits
    assert (info["n_val"], info["n_test"]) == (8, 8)
    assert info["extra_train"] == ["tiny-1"] and "--extra-train tiny-1" in info["command"]
    assert any("24 more training images from tiny-1" in line for line in logs)
    with pytest.raises(ModelError, match="already in the training data or in the main cohort"):
        train(dataclasses.replace(opts, extra_train=["tiny-1", "tiny-1"]), log=lambda _: None)
    with pytest.raises(ModelError, match="already in"):
        train(dataclasses.replace(opts, extra_train=[str(tiny_data)]), log=lambda _: None)
    with pytest.raises(ModelError, match="manifest not found"):
        train(dataclasses.replace(opts, extra_train=["tiny-one"]), log=lambda _: None)
    assert len(_window_seeds(dataclasses.replace(opts, window_samples=1))) == 2
    assert "--window-samples 1" in command_line(dataclasses.replace(opts, window_samples=1))
    with pytest.raises(ModelError, match="--window-samples must be 0 or more"):
        train(dataclasses.replace(opts, window_samples=-1))


def test_dense_pretraining_on_finding_masks(tiny_data, tmp_path):
    """--dense-target trains ds_net on finding masks of patches: the malignant share of the patches shows a
    malignant finding, the kept state's recorded validation AUC is the stage-3 score of that state, the
    early stages move, and the mode's checks hold."""
    from core.models.registry import build_model
    from core.training.dense import MALIGNANT_SHARE, _patch, _Windows, train_dense
    from core.training.evaluation import auc as _auc
    from core.training.objectives import saliency_target_loss

    small = dict(spacing_mm=0.5, input_size={"CC": (160, 112), "MLO": (160, 112)}, threads=1, half=False)
    opts = TrainOptions(
        arch="gmic", out=str(tmp_path / "d.pt"), cohort=str(tiny_data), epochs=2, patch_size=64,
        dense_target=True, samples_per_epoch=8, batch_size=4, lr=1e-3, **small,
    )  # fmt: skip
    config = {"input_size": {"CC": [160, 112], "MLO": [160, 112]}, "spacing_mm": 0.5, "demo": True}
    config.update(crop_shape=[40, 40], K=6, percent_t=0.05)
    model = build_model("gmic", None, config)
    items = load_items(tiny_data, model.spec, [], log=lambda _: None)
    train_items = [it for it in items if it.split == "train"]
    val = [it for it in items if it.split == "val"]

    windows = _Windows(train_items, model.spec, 0.0)
    pools = tuple([i for i, it in enumerate(train_items) if any(f[2] == p for f in it.findings)] for p in
                  ("benign", "malignant"))  # fmt: skip
    rng = np.random.RandomState(0)
    patches = [_patch(windows, pools, 64, rng) for _ in range(200)]
    assert all(p.shape == (64, 64) and m.shape == (2, 64, 64) for p, m in patches)
    assert np.mean([m[1].any() for _, m in patches]) >= MALIGNANT_SHARE - 0.1

    masks = torch.zeros(1, 2, 64, 64)
    masks[0, 1, 20:30, 20:30] = 1
    good = torch.where(torch.nn.functional.adaptive_max_pool2d(masks, (4, 4)) > 0.5, 20.0, -20.0)
    assert (
        saliency_target_loss(good, masks, logits=True)
        < 1e-3
        < 10
        < saliency_target_loss(-good, masks, logits=True)
    )

    before = model.ds_net.first_conv.weight.detach().clone()
    history, best, score = train_dense(model, model.spec, train_items, val, opts, rng, log=lambda _: None)
    assert [r["epoch"] for r in history] == [1, 2] and np.isfinite(history[-1]["train_loss"])
    assert not torch.equal(before, model.ds_net.first_conv.weight)
    assert _auc(score(val), [it.malignant for it in val]) == pytest.approx(best[0], abs=1e-4)

    result = train(opts, log=lambda _: None)
    assert "--dense-target" in command_line(opts) and "--patch-size 64" in command_line(opts)
    d = create_model("gmic", weights=tmp_path / "d.pt", device="cpu")
    assert d.spec.config["training"]["dense_target"] and result.test_auc is not None
    with pytest.raises(ModelError, match="--dense-target is for GMIC with --patch-size"):
        train(dataclasses.replace(opts, patch_size=0))
    with pytest.raises(ModelError, match="--dense-target is for GMIC with --patch-size"):
        train(dataclasses.replace(opts, arch="dmv"))
