"""Training at the official geometry (0.1 mm): what keeps it within memory and time -- window caches cut in
threads, dense cuts taken straight from the crops, the channels_last memory format -- gives what the plain
way gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.models import create_model
from core.training import TrainOptions, command_line, load_items, train

SMALL = dict(spacing_mm=0.5, input_size={"CC": (160, 112), "MLO": (160, 112)}, threads=1, batch_size=4)


def test_prefix_outputs_do_not_depend_on_the_window_threads(tiny_data):
    """The frozen-trunk cache cut in 10 threads (chunks of 10 windows) holds what one thread (chunks of 8)
    holds: the same noisy windows and targets, prefix outputs equal up to the batch size's rounding."""
    from core.models.registry import build_model
    from core.models.resnet import resnet22_output_size
    from core.training.frozen import prefix_outputs as _prefix_outputs

    size = {"CC": (160, 112), "MLO": (160, 112)}
    config = {"input_size": size, "spacing_mm": 0.5, "demo": True, "crop_shape": [40, 40], "K": 4}
    model = build_model("gmic", None, config)
    items = load_items(tiny_data, model.spec, [], log=lambda _: None)[:12]
    seeds = [None if i % 3 == 0 else 100 + i for i in range(len(items))]
    map_size = resnet22_output_size(*size["CC"], first_layer_padding=3)
    one, many = (
        _prefix_outputs(model.ds_net, items, model.spec, 1, 0, seeds, np.float32, map_size, workers=w)
        for w in (1, 10)
    )
    np.testing.assert_array_equal(one[1], many[1])
    np.testing.assert_array_equal(one[2], many[2])
    np.testing.assert_allclose(one[0], many[0], atol=1e-5)


@pytest.mark.parametrize("window", [(160, 112), (48, 40)])
def test_dense_cuts_from_the_crop_equal_cuts_of_the_whole_window(tiny_data, window):
    """Dense pretraining cuts its samples straight from the crop: each cut (image and finding masks) equals
    the same place of the whole standardised window with its masks, and the finding pixels it aims at are
    those of the window's masks; with the window larger than the crop (zero padding) and smaller (cut)."""
    from core.models.registry import build_model
    from core.training.dense import _describe
    from core.training.windows import window_with_masks

    config = {"input_size": {"CC": list(window), "MLO": list(window)}, "spacing_mm": 0.5, "demo": True}
    config.update(crop_shape=[16, 16], K=2, percent_t=0.05)
    model = build_model("gmic", None, config)
    items = [it for it in load_items(tiny_data, model.spec, [], log=lambda _: None) if it.findings][:4]
    assert items
    rng = np.random.RandomState(3)
    for it in items:
        whole = window_with_masks(it.crops[0], it, model.spec, None)
        win = _describe(it, 0, model.spec)
        assert win.shape == whole.shape[1:]
        for c in (0, 1):
            rows, cols = np.nonzero(whole[1 + c] > 0.5)
            np.testing.assert_array_equal(win.spots[c][0], rows)
            np.testing.assert_array_equal(win.spots[c][1], cols)
        size = 32
        for _ in range(6):
            top = rng.randint(0, max(1, whole.shape[1] - size + 1))
            left = rng.randint(0, max(1, whole.shape[2] - size + 1))
            x, m = win.cut(top, left, size)
            ref = whole[:, top : top + size, left : left + size]
            np.testing.assert_allclose(x[: ref.shape[1], : ref.shape[2]], ref[0], atol=2e-5)
            np.testing.assert_array_equal(m[:, : ref.shape[1], : ref.shape[2]], ref[1:])


def test_channels_last_training_equals_the_plain_layout(tiny_data, tmp_path):
    """--channels-last: whole-window GMIC, dense pretraining, frozen-trunk GMIC and DMV train in that memory
    format (weights and inputs), to the same losses as the default layout up to float rounding, and the
    option is recorded in the checkpoint's command."""
    runs = {}
    start = str(tmp_path / "gFalse.pt")  # both layouts' frozen-trunk runs start from the same weights
    for layout in (False, True):
        base = TrainOptions(
            arch="gmic", out=str(tmp_path / f"g{layout}.pt"), cohort=str(tiny_data), epochs=1,
            samples_per_epoch=8, half=False, channels_last=layout, **SMALL,
        )  # fmt: skip
        whole = train(base, log=lambda _: None)
        dense = train(
            dataclasses.replace(base, out=str(tmp_path / f"d{layout}.pt"), dense_target=True, patch_size=64),
            log=lambda _: None,
        )
        top = train(
            dataclasses.replace(
                base, out=str(tmp_path / f"t{layout}.pt"), init=start, freeze_trunk=True, unfreeze_stages=1
            ),
            log=lambda _: None,
        )
        dmv = train(
            TrainOptions(
                arch="dmv", out=str(tmp_path / f"m{layout}.pt"), cohort=str(tiny_data), epochs=1,
                init_trunk=start, freeze_trunk=True, unfreeze_stages=1, window_samples=1, test_samples=1,
                channels_last=layout, **SMALL,
            ),
            log=lambda _: None,
        )  # fmt: skip
        runs[layout] = [r.history[-1]["train_loss"] for r in (whole, dense, top, dmv)]
        assert ("--channels-last" in command_line(base)) == layout
    np.testing.assert_allclose(runs[True], runs[False], rtol=2e-3)
    model = create_model("gmic", weights=tmp_path / "gTrue.pt", device="cpu")
    assert "--channels-last" in model.spec.config["training"]["command"]
    assert torch.isfinite(model.ds_net.first_conv.weight).all()


@pytest.mark.parametrize("mode", ["whole", "frozen"])
def test_a_resumed_run_gives_the_weights_of_an_uninterrupted_one(tiny_data, tmp_path, mode):
    """--resume with a time budget pauses after each epoch (the best checkpoint so far written, the state
    kept); the same command again continues, and the third call ends where an uninterrupted run ends: the
    same weights, history and recorded best epoch, and the state file is gone."""
    from core.models.weights import load_checkpoint
    from core.training.resume import resume_path

    base = TrainOptions(
        arch="gmic", out=str(tmp_path / "start.pt"), cohort=str(tiny_data), epochs=1, samples_per_epoch=8,
        half=False, **SMALL,
    )  # fmt: skip
    if mode == "frozen":
        train(base, log=lambda _: None)
        base = dataclasses.replace(base, init=base.out, freeze_trunk=True, unfreeze_stages=1, ema=0.5)
    base = dataclasses.replace(base, epochs=3, patience=5, lr=1e-3)
    straight = train(dataclasses.replace(base, out=str(tmp_path / "straight.pt")), log=lambda _: None)

    paused = dataclasses.replace(base, out=str(tmp_path / "paused.pt"), resume=True, max_minutes=0.0)
    logs: list[str] = []
    for call in range(3):
        options = paused if call < 2 else dataclasses.replace(paused, max_minutes=None)
        result = train(options, log=logs.append)
        assert resume_path(paused.out).is_file() == (call < 2)
    assert sum("resuming after epoch" in line for line in logs) == 2
    assert [r["val_auc"] for r in result.history] == [r["val_auc"] for r in straight.history]
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in straight.history]
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(result.checkpoint)
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.config["training"]["best_epoch"] == b.config["training"]["best_epoch"]


def test_resume_refuses_other_options_and_modes_it_does_not_cover(tiny_data, tmp_path):
    from core.models import ModelError
    from core.training.resume import resume_path

    base = TrainOptions(
        arch="gmic", out=str(tmp_path / "g.pt"), cohort=str(tiny_data), epochs=2, samples_per_epoch=8,
        resume=True, max_minutes=0.0, **SMALL,
    )  # fmt: skip
    train(base, log=lambda _: None)
    assert resume_path(base.out).is_file()
    with pytest.raises(ModelError, match=r"other options \(lr\)"):
        train(dataclasses.replace(base, lr=1e-2, max_minutes=None), log=lambda _: None)
    train(dataclasses.replace(base, threads=2, max_minutes=None), log=lambda _: None)  # free to change
    assert not resume_path(base.out).exists()
    resume_path(base.out).write_bytes(b"not a state")
    with pytest.raises(ModelError, match="not a training state"):
        train(base, log=lambda _: None)
    with pytest.raises(ModelError, match="--resume is for whole-window"):
        train(dataclasses.replace(base, dense_target=True, patch_size=64), log=lambda _: None)
