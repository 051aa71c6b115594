"""DMV and GMIC architectures against the specification (../shared/spec/nyu-models.md, key lists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.models import ModelError
from core.models.dmv import ImageBreastModel, SingleImageBreastModel, SplitBreastModel
from core.models.gmic import (
    GMIC,
    crop_shape_on_map,
    extract_patches,
    map_to_input,
    retrieve_roi,
)
from core.models.resnet import resnet18_body, resnet22, resnet22_output_size

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec"
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def read_keys(name: str) -> list[tuple[str, list[int], str]]:
    path = SPEC / name
    if not path.is_file():
        pytest.skip(f"specification key list {path} not found")
    rows = []
    for line in path.read_text().splitlines()[1:]:
        key, shape, dtype, numel = line.split("\t")
        dims = [int(d) for d in shape.strip("[]").split(",") if d.strip()]
        assert int(numel) == int(np.prod(dims))
        rows.append((key, dims, dtype))
    return rows


def described(model: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- state-dict layout and parameter counts -------------------------------------------------------------


def test_gmic_state_dict_equals_official_key_list():
    assert described(GMIC()) == read_keys("gmic_keys.tsv")


def test_dmv_view_wise_state_dict_equals_official_key_list():
    assert described(SplitBreastModel(1)) == read_keys("dmv_keys.tsv")


def test_dmv_heatmaps_and_image_wise_layouts():
    official = read_keys("dmv_keys.tsv")
    heat = described(SplitBreastModel(3))
    expected = [(k, [16, 3, 7, 7] if k.endswith("first_conv.weight") else s, d) for k, s, d in official]
    assert heat == expected
    image_wise = ImageBreastModel(1).state_dict()
    columns = [k for k in image_wise if k.startswith("four_view_resnet.")]
    assert columns == [k for k, _, _ in official if k.startswith("four_view_resnet.")]
    heads = [k for k in image_wise if not k.startswith("four_view_resnet.")]
    assert len(image_wise) == 802 and len(heads) == 16
    for v in ("lcc", "rcc", "lmlo", "rmlo"):
        assert image_wise[f"fc1_{v}.weight"].shape == (256, 256)
        assert image_wise[f"output_layer_{v}.fc_layer.weight"].shape == (8, 256)


def test_dmv_column_aliases_share_tensors():
    sd = SplitBreastModel(1).state_dict()
    prefixes = [p for p in ("cc", "mlo", "l_cc", "l_mlo", "r_cc", "r_mlo")]
    assert [k.split(".")[1] for k in sd if k.endswith("first_conv.weight")] == prefixes
    for alias, base in (("l_cc", "cc"), ("r_cc", "cc"), ("l_mlo", "mlo"), ("r_mlo", "mlo")):
        a = sd[f"four_view_resnet.{alias}.layer_list.3.1.conv2.weight"]
        b = sd[f"four_view_resnet.{base}.layer_list.3.1.conv2.weight"]
        assert a.data_ptr() == b.data_ptr()
    cc = sd["four_view_resnet.cc.final_bn.weight"]
    assert cc.data_ptr() != sd["four_view_resnet.mlo.final_bn.weight"].data_ptr()


def test_parameter_counts_match_specification():
    gmic = GMIC()
    assert n_params(gmic) == 14_110_322
    assert n_params(gmic.ds_net) == 2_799_536
    assert n_params(gmic.dn_resnet) == 11_176_512
    assert n_params(resnet22(1)) == 2_799_536
    assert n_params(resnet18_body(3)) == 11_176_512
    assert n_params(SplitBreastModel(1)) == 6_132_592
    assert n_params(SplitBreastModel(3)) == 6_135_728
    assert n_params(ImageBreastModel(1)) == 5_870_464
    assert n_params(SingleImageBreastModel(1)) == 2_866_356
    assert n_params(SingleImageBreastModel(3)) == 2_867_924


@pytest.mark.parametrize(
    ("size", "padding", "expected"),
    [
        ((2677, 1942), 0, (42, 31)),
        ((2974, 1748), 0, (47, 28)),
        ((2944, 1920), 3, (46, 30)),
        ((736, 480), 3, (12, 8)),
    ],
)
def test_resnet22_output_sizes_at_official_sizes(size, padding, expected):
    # Shapes on the meta device: no arithmetic, so full-resolution sizes cost nothing.
    column = resnet22(1, first_layer_padding=padding).to("meta")
    out = column(torch.empty(1, 1, *size, device="meta"))
    assert tuple(out.shape) == (1, 256, *expected)
    assert resnet22_output_size(*size, first_layer_padding=padding) == expected


def test_first_convolution_padding_differs_between_dmv_and_gmic():
    assert resnet22(1).first_conv.padding == (0, 0)
    assert GMIC().ds_net.first_conv.padding == (3, 3)
    assert GMIC().dn_resnet.maxpool.padding == 1


# --- ROI retrieval, hand-checked --------------------------------------------------------------------------


def test_retrieve_roi_hand_checked_case():
    # Class 0: ones at (1,1), (1,2). Class 1: 4 at (3,4), 2 at (4,5), minimum 0 -> normalised 1 and 0.5.
    sal = torch.zeros(1, 2, 5, 6)
    sal[0, 0, 1, 1] = sal[0, 0, 1, 2] = 1.0
    sal[0, 1, 3, 4] = 4.0
    sal[0, 1, 4, 5] = 2.0
    sal = sal + torch.tensor([0.25, -1.0]).view(1, 2, 1, 1)  # offsets vanish in the min-max normalisation
    cells = retrieve_roi(sal, (2, 2), 3)
    # 2x2 window sums: (0,1) and (1,1) both 2 -> first in row-major order is (0,1); its window zeroes (1,1)
    # and (1,2); next best is (3,4) with 1 + 0.5; then everything is 0 and the first cell (0,0) wins.
    assert cells.dtype == np.int64
    assert cells.tolist() == [[[0, 1], [3, 4], [0, 0]]]


def test_retrieve_roi_windows_may_overlap_earlier_ones():
    sal = torch.zeros(1, 2, 4, 4)
    sal[0, :, 0, 0] = 1.0
    sal[0, :, 1, 2] = 0.5
    sal[0, :, 2, 1] = 0.25
    cells = retrieve_roi(sal, (2, 2), 2)
    # Window sums (x2 classes): at (0,0) 2.0, at (1,1) 1.5 -> (0,0) first. Zeroing rows 0-1, cols 0-1 keeps
    # (1,2) and (2,1), both inside the window at (1,1), which overlaps the first window at cell (1,1).
    assert cells.tolist() == [[[0, 0], [1, 1]]]


def test_crop_size_on_map_and_mapping_round_half_to_even():
    assert crop_shape_on_map((256, 256), (46, 30), (2944, 1920)) == (4, 4)
    assert crop_shape_on_map((96, 160), (5, 5), (192, 320)) == (2, 2)  # 2.5 -> 2 (half to even)
    assert crop_shape_on_map((224, 96), (5, 5), (320, 320)) == (4, 2)  # 3.5 -> 4, 1.5 -> 2
    pos = np.array([[[1, 3], [3, 1], [2, 0]]])
    # 1/4*6 = 1.5 -> 2; 3/4*6 = 4.5 -> 4; 2/4*6 = 3; columns: 3/4*10 = 7.5 -> 8, 1/4*10 = 2.5 -> 2, 0.
    assert map_to_input(pos, (4, 4), (6, 10)).tolist() == [[[2, 8], [4, 2], [3, 0]]]
    assert (map_to_input(np.array([[[45, 29]]]), (46, 30), (2944, 1920)) == [[[2880, 1856]]]).all()


def test_extract_patches_bottom_right_aligned_min_filled():
    img = torch.arange(30, dtype=torch.float32).view(1, 1, 5, 6) + 7.0  # minimum 7
    loc = torch.tensor([[[3, 4], [1, 2], [0, 5]]])
    p = extract_patches(img, loc, (3, 3))
    assert p.shape == (1, 3, 3, 3)
    x = img[0, 0]
    expected0 = torch.full((3, 3), 7.0)
    expected0[1:, 1:] = x[3:5, 4:6]  # 2 valid rows and columns, written to the bottom-right
    assert torch.equal(p[0, 0], expected0)
    assert torch.equal(p[0, 1], x[1:4, 2:5])  # inside the image: an exact copy
    expected2 = torch.full((3, 3), 7.0)
    expected2[:, 2:] = x[0:3, 5:6]
    assert torch.equal(p[0, 2], expected2)


def _reference_patches(x: torch.Tensor, loc: np.ndarray, crop: tuple[int, int]) -> torch.Tensor:
    """Literal reading of spec 2.4 step 5, one patch at a time."""
    n, k = loc.shape[:2]
    H, W = x.shape[-2:]
    out = torch.empty(n, k, *crop)
    for i in range(n):
        for j in range(k):
            r, c = int(loc[i, j, 0]), int(loc[i, j, 1])
            r1, c1 = min(r + crop[0], H), min(c + crop[1], W)
            out[i, j] = x[i, 0].min()
            out[i, j, crop[0] - (r1 - r) :, crop[1] - (c1 - c) :] = x[i, 0, r:r1, c:c1]
    return out


def test_extract_patches_equals_literal_reference_on_random_locations():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 37, 29, generator=gen)
    loc = np.stack(
        [np.random.default_rng(1).integers(0, 37, (3, 5)), np.random.default_rng(2).integers(0, 29, (3, 5))],
        -1,
    )
    got = extract_patches(x, torch.from_numpy(loc), (16, 12))
    assert torch.equal(got, _reference_patches(x, loc, (16, 12)))


# --- forward contracts ------------------------------------------------------------------------------------


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial running statistics so that eval mode is not the identity."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


@pytest.fixture(scope="module")
def small_gmic() -> GMIC:
    torch.manual_seed(0)
    return _randomise_bn(GMIC(crop_shape=(64, 48), K=4, percent_t=0.05)).eval()


@pytest.mark.parametrize("size", [(320, 256), (301, 237), (250, 199)])
def test_gmic_forward_shapes_and_bounds_at_several_sizes(small_gmic, size):
    H, W = size
    x = torch.randn(2, 1, H, W, generator=torch.Generator().manual_seed(H))
    with torch.inference_mode():
        out = small_gmic(x)
    h, w = resnet22_output_size(H, W, 3)
    assert out["y_fusion"].shape == out["y_global"].shape == out["y_local"].shape == (2, 2)
    assert out["saliency_map"].shape == (2, 2, h, w)
    assert out["patch_attns"].shape == (2, 4)
    assert out["patches"].shape == (2, 4, 64, 48)
    loc = out["patch_locations"]
    assert loc.shape == (2, 4, 2) and loc.dtype == torch.int64
    assert (loc >= 0).all() and (loc[..., 0] < H).all() and (loc[..., 1] < W).all()
    assert torch.allclose(out["patch_attns"].sum(1), torch.ones(2))
    for key in ("y_fusion", "y_global", "y_local", "saliency_map"):
        assert ((out[key] >= 0) & (out[key] <= 1)).all(), key
    assert torch.equal(out["patches"], _reference_patches(x, loc.numpy(), (64, 48)))


def _reference_gmic(model: GMIC, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spec section 2, step by step with loops, using the model's own layers."""
    n, _, H, W = x.shape
    h_g = model.ds_net(x)
    sal = torch.sigmoid(model.left_postprocess_net.gn_conv_last(h_g))
    h, w = sal.shape[-2:]
    wh, ww = int(np.round(model.crop_shape[0] * h / H)), int(np.round(model.crop_shape[1] * w / W))
    s = sal.numpy()
    lo, hi = s.min(axis=(2, 3), keepdims=True), s.max(axis=(2, 3), keepdims=True)
    summed = ((s - lo) / (hi - lo)).sum(axis=1)
    cells = np.zeros((n, model.K, 2), dtype=np.int64)
    for i in range(n):
        m = summed[i].astype(np.float64)
        for j in range(model.K):
            means = np.array(
                [[m[r : r + wh, c : c + ww].mean() for c in range(w - ww + 1)] for r in range(h - wh + 1)]
            )
            r, c = np.unravel_index(int(np.argmax(means)), means.shape)
            cells[i, j] = (r, c)
            m[r : r + wh, c : c + ww] = 0.0
    loc = np.stack([np.around(cells[..., 0] / h * H), np.around(cells[..., 1] / w * W)], -1).astype(np.int64)
    patches = _reference_patches(x, loc, model.crop_shape)
    feats = model.dn_resnet(patches.reshape(-1, 1, *model.crop_shape).repeat(1, 3, 1, 1)).mean(dim=(2, 3))
    feats = feats.view(n, model.K, -1)
    score = model.mil_attn_w(torch.sigmoid(model.mil_attn_U(feats)) * torch.tanh(model.mil_attn_V(feats)))
    attn = torch.softmax(score[..., 0], dim=1)
    z = (attn[..., None] * feats).sum(1)
    g = h_g.amax(dim=(2, 3))
    return {
        "y_fusion": torch.sigmoid(model.fusion_dnn(torch.cat([g, z], 1))),
        "patch_locations": loc,
        "attn": attn,
    }


def test_gmic_equals_step_by_step_reference(small_gmic):
    x = torch.randn(2, 1, 272, 240, generator=torch.Generator().manual_seed(11))
    with torch.inference_mode():
        out = small_gmic(x)
        ref = _reference_gmic(small_gmic, x)
    assert out["patch_locations"].numpy().tolist() == ref["patch_locations"].tolist()
    assert torch.allclose(out["y_fusion"], ref["y_fusion"], atol=1e-6, rtol=0)
    assert torch.allclose(out["patch_attns"], ref["attn"], atol=1e-6, rtol=0)


def test_gmic_batch_invariance(small_gmic):
    x = torch.randn(2, 1, 256, 208, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        batched = small_gmic(x)
        single = [small_gmic(x[i : i + 1]) for i in range(2)]
    for key in ("y_fusion", "y_global", "y_local", "saliency_map", "patch_attns"):
        assert torch.allclose(batched[key], torch.cat([s[key] for s in single]), atol=1e-5, rtol=0), key
    assert torch.equal(batched["patch_locations"], torch.cat([s["patch_locations"] for s in single]))


def test_gmic_percent_t_changes_only_y_global(small_gmic):
    other = GMIC(crop_shape=(64, 48), K=4, percent_t=0.5).eval()
    other.load_state_dict(small_gmic.state_dict())
    x = torch.randn(1, 1, 256, 224, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        a, b = small_gmic(x), other(x)
    assert torch.equal(a["y_fusion"], b["y_fusion"])
    assert not torch.equal(a["y_global"], b["y_global"])
    cells = a["saliency_map"].shape[2] * a["saliency_map"].shape[3]
    top = a["saliency_map"].flatten(2).sort(dim=2, descending=True)[0][..., : max(1, round(cells * 0.05))]
    assert torch.allclose(a["y_global"], top.mean(2))


def test_gmic_official_defaults_and_input_errors():
    model = GMIC()
    assert (model.crop_shape, model.K, model.percent_t) == ((256, 256), 6, 0.02)
    assert model.top_t_count((46, 30)) == 28
    with pytest.raises(ModelError, match=r"\(N, 1, H, W\)"):
        model(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ModelError, match="too small"):
        GMIC(crop_shape=(64, 64), K=2).eval()(torch.zeros(1, 1, 40, 40))
    with pytest.raises(ModelError, match="less than half a saliency-map cell"):
        GMIC(crop_shape=(16, 16), K=2).eval()(torch.zeros(1, 1, 192, 160))
    with pytest.raises(ModelError, match="configuration"):
        GMIC(K=0)


@pytest.fixture(scope="module")
def dmv_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        v: torch.randn(3, 1, 97, 71, generator=gen)
        if "CC" in v
        else torch.randn(3, 1, 105, 64, generator=gen)
        for v in VIEWS
    }


def test_dmv_view_wise_outputs_and_batch_invariance(dmv_inputs):
    torch.manual_seed(0)
    model = _randomise_bn(SplitBreastModel(1)).eval()
    with torch.inference_mode():
        out = model(dmv_inputs)
        single = [model({v: t[i : i + 1] for v, t in dmv_inputs.items()}) for i in range(3)]
        again = model(dmv_inputs)
    assert set(out) == {"CC", "MLO"}
    for head in ("CC", "MLO"):
        assert out[head].shape == (3, 4, 2)
        assert torch.allclose(out[head].exp().sum(-1), torch.ones(3, 4), atol=1e-6)
        assert torch.allclose(out[head], torch.cat([s[head] for s in single]), atol=1e-5, rtol=0)
        assert torch.equal(out[head], again[head])  # no noise at inference


def test_dmv_views_reach_their_own_head(dmv_inputs):
    model = _randomise_bn(SplitBreastModel(1)).eval()
    changed = dict(dmv_inputs, **{"R-MLO": dmv_inputs["R-MLO"] * 2.0})
    with torch.inference_mode():
        a, b = model(dmv_inputs), model(changed)
    assert torch.equal(a["CC"], b["CC"]) and not torch.equal(a["MLO"], b["MLO"])


def test_dmv_training_noise_only_in_training_mode(dmv_inputs):
    model = SplitBreastModel(1)
    model.train()
    with torch.no_grad():
        a, b = model(dmv_inputs), model(dmv_inputs)
    assert not torch.equal(a["CC"], b["CC"])


def test_dmv_heatmap_channels_and_input_errors():
    model = SplitBreastModel(3).eval()
    x = {v: torch.randn(1, 3, 64, 48) for v in VIEWS}
    with torch.inference_mode():
        assert model(x)["MLO"].shape == (1, 4, 2)
    with pytest.raises(ModelError, match="R-MLO"):
        model({v: x[v] for v in VIEWS[:3]})
    with pytest.raises(ModelError, match=r"\(N, 3, H, W\)"):
        model({v: torch.randn(1, 1, 64, 48) for v in VIEWS})
    with pytest.raises(ModelError, match="10x40 px is too small"):
        model(dict(x, **{"R-CC": torch.randn(1, 3, 10, 40)}))
    with torch.inference_mode():  # 11 px is the smallest side the column accepts (spec 1.1)
        assert model({v: torch.randn(1, 3, 11, 11) for v in VIEWS})["CC"].shape == (1, 4, 2)
    with pytest.raises(ModelError, match="batch sizes"):
        model(dict(x, **{"L-CC": torch.randn(2, 3, 64, 48)}))


@pytest.fixture(scope="module")
def image_wise(dmv_inputs):
    torch.manual_seed(2)
    model = _randomise_bn(ImageBreastModel(1)).eval()
    with torch.inference_mode():
        return model, model(dmv_inputs)


@pytest.mark.parametrize("view", VIEWS)
def test_single_image_model_equals_first_rows_of_image_wise(dmv_inputs, image_wise, view):
    model, outputs = image_wise
    single = SingleImageBreastModel(1).eval()
    single.load_state_dict(SingleImageBreastModel.state_dict_from_image_wise(model.state_dict(), view))
    with torch.inference_mode():
        one = single(dmv_inputs[view])
    full = outputs[view]
    assert full.shape == (3, 4, 2) and one.shape == (3, 2, 2)
    # log-softmax over pairs of logits: the first 4 logits give exactly the first two rows.
    assert torch.allclose(one, full[:, :2], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_gmic_at_the_official_input_size():
    model = _randomise_bn(GMIC(), seed=4).eval()
    x = torch.randn(1, 1, 2944, 1920, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        out = model(x)
    assert out["saliency_map"].shape == (1, 2, 46, 30)
    loc = out["patch_locations"][0]
    # A 4x4-cell window maps to 256x256 px, and cell positions map to exact multiples of 64 px.
    assert (loc % 64 == 0).all() and (loc[:, 0] <= 2944 - 256).all() and (loc[:, 1] <= 1920 - 256).all()
    for k, (r, c) in enumerate(loc.tolist()):
        assert torch.equal(out["patches"][0, k], x[0, 0, r : r + 256, c : c + 256])


def test_training_step_reaches_every_parameter():
    torch.manual_seed(0)
    gmic = GMIC(crop_shape=(64, 64), K=2).train()
    out = gmic(torch.randn(2, 1, 192, 160))
    (out["y_fusion"].sum() + out["y_global"].sum() + out["y_local"].sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gmic.parameters())
    dmv = SplitBreastModel(1).train()
    out = dmv({v: torch.randn(2, 1, 64, 48) for v in VIEWS})
    (out["CC"][..., 1].sum() + out["MLO"][..., 1].sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dmv.parameters())
