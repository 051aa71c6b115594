"""``mammo-robust train`` on the tiny synthetic cohort: short runs that write loadable checkpoints."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from core.cli import main
from core.models import ModelError, create_model
from core.models.train import TrainOptions, command_line, load_items, parse_augment, train

SMALL = ["--spacing-mm", "1.0", "--input-size", "96x64", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A private data folder holding the tiny cohort (generated once for this module)."""
    folder = tmp_path_factory.mktemp("data")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAMMO_ROBUST_DATA", str(folder))
        from core.phantom import ensure_cohort

        manifest = ensure_cohort("tiny")
        yield manifest
    torch.set_num_threads(threads)  # training sets one thread


@pytest.mark.slow
def test_train_gmic_one_epoch_writes_loadable_checkpoint(tiny_data, tmp_path, capsys):
    out = tmp_path / "gmic-tiny.pt"
    code = main(["train", "gmic", "--cohort", str(tiny_data), "--epochs", "1", "--seed", "3", "--out", str(out),
                 *SMALL, "--no-cache"])  # fmt: skip
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
    options = TrainOptions(arch="dmv", out=str(out), cohort=str(tiny_data), epochs=1, batch_size=2,
                           spacing_mm=1.0, input_size={"CC": (96, 64), "MLO": (96, 64)}, augment=["lowpass:1.0"],
                           test_samples=2, threads=1)  # fmt: skip
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
        opts = TrainOptions(arch="gmic", out=str(tmp_path / name), cohort=str(tiny_data), epochs=1, seed=seed,
                            spacing_mm=1.0, input_size={"CC": (96, 64), "MLO": (96, 64)}, samples_per_epoch=4,
                            batch_size=4, threads=1, half=False)  # fmt: skip
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
