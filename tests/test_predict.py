"""Model inputs and predictions on small randomly initialised models and synthetic breasts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.imaging import Mammogram
from core.models import ModelError
from core.models.forward import DMV_LABELS
from core.models.inputs import pipeline_params, prepare_geometry, prepare_input, resample
from core.models.predict import predict_dmv, predict_gmic
from core.models.preprocess import PreprocessError
from core.models.registry import build_model

SMALL = {"input_size": [96, 64], "spacing_mm": 1.0}


def _breast(laterality: str, view: str, seed: int = 0, shape=(260, 170)) -> Mammogram:
    """A right-facing half ellipse of textured tissue at 0.5 mm, mirrored for right breasts."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (h * 0.42)) ** 2 + (xx / (w * 0.75)) ** 2 < 1
    img = np.where(inside, 1500 + 400 * rng.random(shape), 0).astype(np.float32)
    if laterality == "R":
        img = img[:, ::-1].copy()
    return Mammogram(img, spacing_mm=(0.5, 0.5), spacing_source="caller", laterality=laterality, view=view)


def _exam(seed: int) -> dict[str, Mammogram]:
    return {
        f"{lat}-{v}": _breast(lat, v, seed * 10 + k)
        for k, (lat, v) in enumerate([("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO")])
    }


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gmic():
    torch.manual_seed(0)
    return build_model("gmic", config={**SMALL, "crop_shape": [48, 48], "K": 3}).eval()


@pytest.fixture(scope="module")
def dmv():
    torch.manual_seed(0)
    return build_model("dmv", "image-only", SMALL).eval()


def test_pipeline_params_official_and_scaled():
    official = pipeline_params(build_model("dmv", "image-only").spec)
    assert official.scale == 1 and official.spacing_mm is None
    assert (official.erosion_iterations, official.buffer) == (100, 50)
    assert official.max_crop_noise == (100, 100) and official.max_crop_size_noise == 100
    assert official.window == {"CC": (2677, 1942), "MLO": (2974, 1748)}
    demo = pipeline_params(build_model("gmic", config={"input_size": [336, 224], "spacing_mm": 0.6}).spec)
    assert math.isclose(demo.scale, 6.0)
    assert (demo.erosion_iterations, demo.buffer, demo.max_crop_size_noise) == (17, 8, 17)


def test_resample_to_spec_spacing_keeps_background_zero(gmic):
    m = _breast("L", "CC")
    img = resample(m.pixels, m.spacing_mm, pipeline_params(gmic))
    assert img.shape == (130, 85) and img.dtype == np.float32
    assert img[:, -5:].max() == 0 and img[:3].max() == 0  # far from the breast: still exactly 0
    assert abs(img[60:70, 5:15].mean() - m.pixels[120:140, 10:30].mean()) < 30


def test_prepare_input_is_a_standardised_window(gmic):
    x = prepare_input(_breast("R", "MLO"), gmic.spec)
    assert x.shape == (96, 64) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4
    # right breasts are flipped to face right: the chest wall column (0) is tissue
    assert x[:, 0].max() > x.min()


def test_prepare_input_on_real_gmic_sample_matches_spec_table(nyu_samples):
    from core.imaging import load_mammogram

    spec = build_model("gmic").spec  # official pipeline: native pixels, 2944 x 1920 window
    m = load_mammogram(nyu_samples / "gmic_0_R-CC.png")
    m = Mammogram(m.pixels, spacing_mm=m.spacing_mm, laterality="R", view="CC", source_name="gmic_0_R-CC.png")
    geo = prepare_geometry(m, spec)
    assert geo.center == (1072, -210) and geo.window_location == (0, 2144, 0, 801)
    x = prepare_input(m, spec, geometry=geo)
    tissue = x > x.min()
    rows, cols = np.flatnonzero(tissue.any(axis=1)), np.flatnonzero(tissue.any(axis=0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (400, 2519, 0, 751)


def test_geometry_of_clean_image_applies_to_noisy_one(gmic):
    clean = _breast("L", "CC")
    noisy = Mammogram(clean.pixels + 50.0, spacing_mm=clean.spacing_mm, laterality="L", view="CC")
    with pytest.raises(PreprocessError):  # no zero background left: the NYU crop cannot find the breast
        prepare_geometry(Mammogram(np.full((40, 40), 5.0), laterality="L", view="CC"), gmic.spec)
    geo = prepare_geometry(clean, gmic.spec)
    a = prepare_input(clean, gmic.spec, geometry=geo)
    b = prepare_input(noisy, gmic.spec, geometry=geo)
    inside = slice(20, 70), slice(5, 30)
    np.testing.assert_allclose(a[inside], b[inside] + (a[inside] - b[inside]).mean(), atol=1e-3)


def test_predict_gmic_shapes_and_batch_invariance(gmic):
    images = [_breast("L", "CC", 1), _breast("R", "MLO", 2), _breast("R", "CC", 3), _breast("L", "MLO", 4)]
    one = np.vstack([predict_gmic(gmic, [im]) for im in images])
    batched = predict_gmic(gmic, images, batch_size=3)
    assert batched.shape == (4, 2) and np.all((batched >= 0) & (batched <= 1))
    np.testing.assert_allclose(one, batched, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])  # inputs differ, so do the outputs


def test_predict_gmic_returns_y_fusion_and_ensemble_mean(gmic):
    torch.manual_seed(1)
    other = build_model("gmic", config={**SMALL, "crop_shape": [48, 48], "K": 3}).eval()
    with torch.no_grad():
        other.fusion_dnn.weight.zero_()
        other.fusion_dnn.bias.copy_(torch.tensor([0.0, math.log(0.2 / 0.8)]))
    images = [_breast("L", "CC", 5), _breast("R", "CC", 6)]
    fixed = predict_gmic(other, images)
    np.testing.assert_allclose(fixed, [[0.5, 0.2], [0.5, 0.2]], atol=1e-6)
    ens = predict_gmic([gmic, other], images)
    np.testing.assert_allclose(ens, (predict_gmic(gmic, images) + fixed) / 2, atol=1e-6)


def test_predict_dmv_label_order_and_head_mean(dmv):
    torch.manual_seed(2)
    model = build_model("dmv", "image-only", SMALL).eval()
    p_cc = np.array([0.1, 0.2, 0.3, 0.4])
    p_mlo = np.array([0.5, 0.6, 0.7, 0.9])
    with torch.no_grad():
        for layer, p in ((model.output_layer_cc.fc_layer, p_cc), (model.output_layer_mlo.fc_layer, p_mlo)):
            layer.weight.zero_()
            bias = np.zeros(8)
            bias[1::2] = np.log(p / (1 - p))  # logit 2i+1 = label i, positive class
            layer.bias.copy_(torch.tensor(bias))
    out = predict_dmv(model, [_exam(0)], samples=2)
    assert DMV_LABELS == ("left_benign", "right_benign", "left_malignant", "right_malignant")
    np.testing.assert_allclose(out[0], (p_cc + p_mlo) / 2, atol=1e-6)


def test_predict_dmv_seeded_and_batch_invariant(dmv):
    exams = [_exam(1), _exam(2)]
    together = predict_dmv(dmv, exams, samples=3, batch_size=2)
    one_by_one = np.vstack([predict_dmv(dmv, [e], samples=3, batch_size=1) for e in exams])
    assert together.shape == (2, 4) and np.all((together > 0) & (together < 1))
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(together, predict_dmv(dmv, exams, samples=3, batch_size=2))
    assert not np.allclose(together, predict_dmv(dmv, exams, samples=3, seed=1), atol=1e-7)
    # the official single stream: the first exam is the same, later ones see a continued generator
    shared = predict_dmv(dmv, exams, samples=3, shared_rng=True)
    np.testing.assert_allclose(shared[0], together[0], atol=1e-6)
    assert not np.allclose(shared[1], together[1], atol=1e-7)
    fixed = predict_dmv(dmv, exams[:1], samples=0)
    np.testing.assert_array_equal(fixed, predict_dmv(dmv, exams[:1], samples=0, seed=5))


def test_bad_input_errors(gmic, dmv):
    exam = _exam(0)
    del exam["R-MLO"]
    with pytest.raises(ModelError, match="missing view.*R-MLO"):
        predict_dmv(dmv, [exam])
    swapped = _exam(0)
    swapped["L-CC"], swapped["R-CC"] = swapped["R-CC"], swapped["L-CC"]
    with pytest.raises(ModelError, match="under L-CC is a R-CC view"):
        predict_dmv(dmv, [swapped])
    with pytest.raises(ModelError, match="Mammogram"):
        predict_gmic(gmic, [np.zeros((10, 10))])
    with pytest.raises(ModelError, match="laterality and view"):
        predict_gmic(gmic, [Mammogram(np.ones((30, 30)), view="CC")])
    empty = Mammogram(np.zeros((200, 150)), laterality="L", view="CC", source_name="blank.dcm")
    with pytest.raises(PreprocessError, match="blank.dcm"):
        predict_gmic(gmic, [empty])
    with pytest.raises(ModelError, match="batch_size"):
        predict_gmic(gmic, [_breast("L", "CC")], batch_size=0)


def test_predict_command_writes_csv(gmic, dmv, tmp_path, capsys):
    from core.cli import main
    from core.imaging import save_png
    from core.models.weights import save_checkpoint

    g_path = save_checkpoint(
        tmp_path / "g.pt", gmic, arch="gmic", variant="resnet18", config=gmic.spec.config
    )
    d_path = save_checkpoint(tmp_path / "d.pt", dmv, arch="dmv", variant="image-only", config=dmv.spec.config)
    files = []
    for view, m in _exam(4).items():
        files.append(str(save_png(m, tmp_path / f"case_{view}.png")))
    out = tmp_path / "gmic.csv"
    argv = [
        "predict",
        "gmic",
        *files[:2],
        "--weights",
        str(g_path),
        "--spacing",
        "0.5",
        "0.5",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.columns) == ["image_id", "benign_pred", "malignant_pred"] and len(table) == 2
    expected = predict_gmic(gmic, [_exam(4)["L-CC"], _exam(4)["R-CC"]])
    np.testing.assert_allclose(table[["benign_pred", "malignant_pred"]].to_numpy(), expected, atol=2e-3)
    argv = ["predict", "dmv", *files, "--weights", str(d_path), "--spacing", "0.5", "0.5", "--samples", "1"]
    assert main(argv) == 0
    assert (
        capsys.readouterr().out.splitlines()[0]
        == "exam_id,left_benign,right_benign,left_malignant,right_malignant"
    )
    assert main(["predict", "dmv", *files[:3], "--weights", str(d_path)]) == 2
    assert "four files" in capsys.readouterr().err


def test_predict_on_a_labelled_manifest_states_the_auc(tmp_path, capsys):
    """``predict --manifest`` of a labelled cohort prints the malignant AUC (GMIC per image and per breast,
    DMV per breast) of the predictions it writes, with its bootstrap interval."""
    import pandas as pd

    from core.cli import main
    from core.metrics import bootstrap_auc
    from core.phantom import generate_cohort

    manifest = generate_cohort("tiny", tmp_path / "tiny-0", 0)
    truth = pd.read_csv(manifest, dtype={"exam_id": str})
    out = tmp_path / "gmic.csv"
    assert (
        main(["predict", "gmic", "--manifest", str(manifest), "--weights", "demo-fast", "--out", str(out)])
        == 0
    )
    err = capsys.readouterr().err
    table = pd.read_csv(out, dtype={"exam_id": str})
    image = bootstrap_auc(table["malignant_pred"].to_numpy(), table["label_malignant"].to_numpy())
    assert f"malignant AUC per image: {image.auc:.4f} [{image.ci_low:.3f}, {image.ci_high:.3f}]" in err
    breast = table.groupby(["exam_id", "laterality"]).agg(
        s=("malignant_pred", "mean"), y=("label_malignant", "max")
    )
    per_breast = bootstrap_auc(breast["s"].to_numpy(), breast["y"].to_numpy())
    assert f"malignant AUC per breast: {per_breast.auc:.4f}" in err
    out = tmp_path / "dmv.csv"
    argv = ["predict", "dmv", "--manifest", str(manifest), "--weights", "demo-fast", "--samples", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "malignant AUC per breast:" in err and "per image" not in err
    assert len(pd.read_csv(out)) == truth["exam_id"].nunique()
