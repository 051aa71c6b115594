"""Checkpoint I/O and create_model: official legacy files, project checkpoints, unsafe and broken files."""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from core.models import ModelError, build_model, create_model, save_checkpoint
from core.models import registry as registry_mod
from core.models.dmv import ImageBreastModel, SplitBreastModel
from core.models.gmic import GMIC
from core.models.weights import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_into,
    read_weights_file,
    save_official,
)

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def _perturb_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random, non-default values in every floating tensor (BN statistics included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) * 0.2 + (0.9 if "running_var" in key else -0.1))
            elif key.endswith("num_batches_tracked"):
                t.fill_(7)
    return model


@pytest.fixture(scope="module")
def gmic_model() -> GMIC:
    return _perturb_weights(GMIC(), 1).eval()


@pytest.fixture(scope="module")
def dmv_model() -> SplitBreastModel:
    return _perturb_weights(SplitBreastModel(1), 2).eval()


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


# --- official layout, legacy serialisation ----------------------------------------------------------------


def test_official_gmic_legacy_file_round_trip(tmp_path, gmic_model):
    path = save_official(tmp_path / "sample_model_4.p", gmic_model, "gmic", legacy=True)
    assert not zipfile.is_zipfile(path)  # the pre-1.6 format of the released files
    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert "shared_rep_filter.weight" in raw and "ds_net.first_conv.weight" in raw
    model = create_model("gmic", path, device="cpu")
    assert not model.training
    assert_same_state(model, gmic_model)
    spec = model.spec
    assert (spec.arch, spec.variant, spec.weights, spec.is_demo) == (
        "gmic",
        "resnet18",
        "sample_model_4.p",
        False,
    )
    assert spec.input_size == {"CC": (2944, 1920), "MLO": (2944, 1920)}
    assert (spec.crop_shape, spec.K, spec.percent_t) == ((256, 256), 6, 0.05)  # model 4's percent_t
    x = torch.randn(1, 1, 256, 192, generator=torch.Generator().manual_seed(0))
    small = GMIC(crop_shape=(64, 64)).eval()
    small.load_state_dict(model.state_dict())
    ref = GMIC(crop_shape=(64, 64)).eval()
    ref.load_state_dict(gmic_model.state_dict())
    with torch.inference_mode():
        assert torch.equal(small(x)["y_fusion"], ref(x)["y_fusion"])


def test_official_dmv_legacy_file_without_batch_counters(tmp_path, dmv_model):
    state = OrderedDict(
        (k, v) for k, v in dmv_model.state_dict().items() if not k.endswith("num_batches_tracked")
    )
    path = tmp_path / "sample_image_model.p"
    torch.save({"model": state, "epoch": 12}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    model = create_model("dmv", path, device="cpu", fast=False)  # the exact path: bit-identical outputs
    assert type(model) is SplitBreastModel and model.spec.variant == "image-only"
    assert model.spec.input_size == {"CC": (2677, 1942), "MLO": (2974, 1748)}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == 0
        else:
            assert torch.equal(value, dmv_model.state_dict()[key]), key
    x = {
        v: torch.randn(2, 1, 64, 48, generator=torch.Generator().manual_seed(i)) for i, v in enumerate(VIEWS)
    }
    with torch.inference_mode():
        a, b = model(x), dmv_model(x)
    assert torch.equal(a["CC"], b["CC"]) and torch.equal(a["MLO"], b["MLO"])


def test_numpy_metadata_beside_the_state_dict_loads_as_data(tmp_path, dmv_model):
    import numpy as np

    path = tmp_path / "sample_image_model.p"
    extra = {"epoch": np.int64(41), "val_auc": np.array([0.81, 0.83])}
    torch.save({"model": dmv_model.state_dict(), **extra}, path, _use_new_zipfile_serialization=False)
    # The same file as numpy 1.x (the official files' era) names its rebuild functions.
    blob = path.read_bytes()
    assert b"numpy._core.multiarray\n" in blob
    old = tmp_path / "old_numpy.p"
    old.write_bytes(blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    for file in (path, old):
        raw = read_weights_file(file)
        assert int(raw["epoch"]) == 41 and raw["val_auc"].tolist() == [0.81, 0.83]
        assert_same_state(create_model("dmv", file, device="cpu"), dmv_model)


def test_official_dmv_heatmaps_and_image_wise_variants_inferred(tmp_path):
    heat = save_official(tmp_path / "sample_imageheatmaps_model.p", SplitBreastModel(3), "dmv")
    assert load_checkpoint(heat).variant == "image-heatmaps"
    assert create_model("dmv", heat, device="cpu").spec.in_channels == 3
    image_wise = save_official(tmp_path / "ImageOnly__ModeImage_weights.p", ImageBreastModel(1), "dmv")
    assert load_checkpoint(image_wise).variant == "image-wise"
    assert type(create_model("dmv", image_wise, device="cpu")) is ImageBreastModel


def test_single_image_model_from_official_image_wise_file(tmp_path):
    source = _perturb_weights(ImageBreastModel(1), 3).eval()
    path = save_official(tmp_path / "ImageOnly__ModeImage_weights.p", source, "dmv")
    x = torch.randn(2, 1, 80, 64, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        full = source({v: x for v in VIEWS})
    for view in ("L-CC", "R-MLO"):
        single = create_model("dmv", path, variant="single", view=view, device="cpu")
        assert single.spec.variant == "single" and single.spec.view == view
        with torch.inference_mode():
            assert torch.allclose(single(x), full[view][:, :2], atol=1e-6, rtol=0)
    with pytest.raises(ModelError, match="needs view"):
        create_model("dmv", path, variant="single", device="cpu")


def test_gmic_file_without_the_unused_key_also_loads(tmp_path, gmic_model):
    path = save_official(tmp_path / "g.p", gmic_model, "gmic", legacy=False, extra_shared_rep_filter=False)
    assert zipfile.is_zipfile(path)
    assert_same_state(create_model("gmic", path, device="cpu"), gmic_model)


# --- keys that do not fit -----------------------------------------------------------------------------------


def test_wrong_shape_missing_and_unexpected_keys_are_named(tmp_path, gmic_model):
    state = OrderedDict(gmic_model.state_dict())
    state["mil_attn_w.weight"] = torch.zeros(2, 128)
    del state["fusion_dnn.bias"]
    state["extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.p"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError) as info:
        create_model("gmic", path, device="cpu")
    text = str(info.value)
    assert str(path) in text
    assert "mil_attn_w.weight [2, 128] (expected [1, 128])" in text
    assert "missing keys: fusion_dnn.bias" in text
    assert "unexpected keys: extra_head.weight" in text


def test_dmv_missing_column_alias_is_an_error(dmv_model):
    state = {k: v for k, v in dmv_model.state_dict().items() if not k.startswith("four_view_resnet.r_mlo.")}
    with pytest.raises(ModelError, match=r"missing keys: four_view_resnet\.r_mlo\.first_conv\.weight"):
        load_into(SplitBreastModel(1), state, "x.p")


def test_weights_of_the_other_architecture_are_refused(tmp_path, dmv_model):
    path = save_official(tmp_path / "dmv.p", dmv_model, "dmv")
    with pytest.raises(ModelError, match="dmv weights, not gmic"):
        create_model("gmic", path)
    with pytest.raises(ModelError, match="not image-wise"):
        create_model("dmv", path, variant="image-wise")


# --- unsafe and broken files ------------------------------------------------------------------------------


class _Payload:
    """Pickles as a call that would create a marker file if the pickle were executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.mark.parametrize("kind", ["legacy", "zip", "raw-pickle"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, kind):
    marker = tmp_path / "executed"
    path = tmp_path / "sample_model_1.p"
    payload = {"model": {"four_view_resnet.cc.first_conv.weight": _Payload(marker)}}
    if kind == "raw-pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=kind == "zip")
    assert not marker.exists()
    with pytest.raises(ModelError, match="refused to load") as info:
        create_model("dmv", path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a readable PyTorch weight file"),
        (b"\x89PNG\r\n garbage" * 20, "not a readable PyTorch weight"),
    ],
)
def test_broken_files_give_model_errors(tmp_path, content, message):
    path = tmp_path / "weights.p"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_checkpoint(path)


def test_missing_file_and_non_state_dicts(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        create_model("gmic", tmp_path / "nope.p")
    path = tmp_path / "list.p"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelError, match="state dict"):
        load_checkpoint(path)
    torch.save({"a.weight": torch.zeros(2)}, path)
    with pytest.raises(ModelError, match="neither a GMIC nor a DMV"):
        load_checkpoint(path)


# --- project checkpoints --------------------------------------------------------------------------------


def test_project_checkpoint_round_trip_in_float16(tmp_path):
    config = {
        "input_size": [640, 416],
        "crop_shape": [64, 64],
        "K": 4,
        "percent_t": 0.05,
        "spacing_mm": 0.3,
        "downsample": 3.0,
        "demo": True,
        "training": {"seed": 0, "epochs": 2, "test_auc": 0.9, "cohort": "demo-0"},
    }
    model = _perturb_weights(build_model("gmic", config=config), 5)
    assert model.spec.weights == "random" and model.spec.crop_shape == (64, 64)
    path = save_checkpoint(
        tmp_path / "gmic-demo.pt", model, arch="gmic", variant="resnet18", config=config, half=True
    )
    raw = torch.load(path, weights_only=True)
    assert (
        raw["format"] == CHECKPOINT_FORMAT and raw["state_dict"]["fusion_dnn.weight"].dtype == torch.float16
    )
    loaded = create_model("gmic", path, device="cpu")
    spec = loaded.spec
    assert spec.input_size == {"CC": (640, 416), "MLO": (640, 416)}
    assert (spec.crop_shape, spec.K, spec.percent_t, spec.spacing_mm, spec.downsample) == (
        (64, 64),
        4,
        0.05,
        0.3,
        3.0,
    )
    assert spec.is_demo and spec.config["training"]["test_auc"] == 0.9
    assert (loaded.crop_shape, loaded.K) == ((64, 64), 4)
    for key, value in loaded.state_dict().items():
        original = model.state_dict()[key]
        if value.is_floating_point():
            assert value.dtype == torch.float32
            assert torch.allclose(value, original.half().float()), key
        else:
            assert torch.equal(value, original)


def test_project_checkpoint_stores_shared_dmv_columns_once(tmp_path, dmv_model):
    full = save_checkpoint(tmp_path / "a.pt", dmv_model, arch="dmv", variant="image-only")
    half = save_checkpoint(tmp_path / "b.pt", dmv_model, arch="dmv", variant="image-only", half=True)
    float_bytes = 6_132_592 * 4
    assert full.stat().st_size < 1.1 * float_bytes
    assert half.stat().st_size < 0.6 * float_bytes
    cfg = {"input_size": {"CC": [268, 194], "MLO": [297, 175]}}
    save_checkpoint(tmp_path / "c.pt", dmv_model, arch="dmv", variant="image-only", config=cfg)
    loaded = create_model("dmv", tmp_path / "c.pt", device="cpu")
    assert loaded.spec.input_size_for("R-MLO") == (297, 175) and loaded.spec.input_size_for("CC") == (
        268,
        194,
    )
    assert_same_state(loaded, dmv_model)


def test_project_checkpoint_errors(tmp_path, dmv_model):
    with pytest.raises(ModelError, match="not a plain type"):
        save_checkpoint(
            tmp_path / "x.pt", dmv_model, arch="dmv", variant="image-only", config={"f": object()}
        )
    path = tmp_path / "y.pt"
    torch.save({"format": "other/9", "state_dict": {}}, path)
    with pytest.raises(ModelError, match="unknown checkpoint format"):
        load_checkpoint(path)
    torch.save({"format": CHECKPOINT_FORMAT, "arch": "dmv", "variant": "image-only"}, path)
    with pytest.raises(ModelError, match="lacks state_dict"):
        load_checkpoint(path)
    save_checkpoint(path, dmv_model, arch="dmv", variant="image-only", config={"input_size": [10]})
    with pytest.raises(ModelError, match="input_size"):
        create_model("dmv", path)


# --- registry -------------------------------------------------------------------------------------------


def test_demo_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_mod, "demo_path", lambda name, label: tmp_path / f"{name}-{label}.pt")
    with pytest.raises(ModelError, match="demo weights for gmic are missing"):
        create_model("gmic")


def test_demo_weights_resolve_to_assets(tmp_path, monkeypatch, dmv_model):
    monkeypatch.setattr(registry_mod, "demo_path", lambda name, label: tmp_path / f"{name}-{label}.pt")
    save_checkpoint(
        tmp_path / "dmv-demo.pt", dmv_model, arch="dmv", variant="image-only", config={"demo": True}
    )
    model = create_model("dmv", "demo", device="cpu")
    assert model.spec.weights == "demo" and model.spec.is_demo
    with pytest.raises(ModelError, match="demo-fast weights for dmv are missing"):
        create_model("dmv", "demo-fast", device="cpu")
    (tmp_path / "dmv-demo.pt").rename(tmp_path / "dmv-demo-fast.pt")
    model = create_model("dmv", "demo-fast", device="cpu")
    assert model.spec.weights == "demo-fast" and model.spec.is_demo


def test_registry_names_variants_and_random_weights():
    assert registry_mod.list_models() == ["dmv", "gmic"]
    with pytest.raises(ModelError, match="unknown model"):
        create_model("resnet50", None)
    with pytest.raises(ModelError, match="unknown variant"):
        create_model("dmv", None, variant="fancy")
    with pytest.raises(ModelError, match="unknown device"):
        create_model("dmv", None, device="tpu:9")
    model = create_model("DMV", None, variant="view-wise-heatmaps", device="cpu")
    assert type(model) is SplitBreastModel and model.spec.in_channels == 3 and not model.training
    assert next(model.parameters()).device.type == ("cpu")
    assert create_model("gmic", "random").spec.weights == "random"


def test_channels_last_option_keeps_outputs(tmp_path, dmv_model):
    path = save_official(tmp_path / "d.p", dmv_model, "dmv")
    plain = create_model("dmv", path, device="cpu", fast=False)
    fast = create_model("dmv", path, device="cpu", channels_last=True)
    assert fast.four_view_resnet.cc.first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = {
        v: torch.randn(2, 1, 72, 56, generator=torch.Generator().manual_seed(i)) for i, v in enumerate(VIEWS)
    }
    with torch.inference_mode():
        a, b = plain(x), fast(x)
    assert torch.allclose(a["CC"], b["CC"], atol=1e-5) and torch.allclose(a["MLO"], b["MLO"], atol=1e-5)


def test_checkpoint_of_a_model_on_another_device_keeps_every_tensor(tmp_path, monkeypatch):
    """A CUDA model's tensors are copied to the CPU one by one; a freed copy's address is reused by the
    next copy. The file must still hold every tensor (a GPU-trained checkpoint once aliased same-shaped
    tensors this way). Here ``Tensor.cpu`` returns a fresh copy, as it does for a CUDA tensor."""
    model = _perturb_weights(
        build_model("gmic", config={"input_size": [192, 128], "crop_shape": [32, 32]}), 3
    )
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: self.detach().clone())
    path = save_checkpoint(tmp_path / "g.pt", model, arch="gmic", variant="resnet18", half=True)
    monkeypatch.undo()
    loaded = torch.load(path, weights_only=True)["state_dict"]
    for key, value in expected.items():
        want = value.half() if value.is_floating_point() else value
        assert torch.equal(loaded[key], want), key
