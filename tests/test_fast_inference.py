"""The fast inference path (channels_last + inference_mode, the default of runs and ``predict``) against
the exact path (contiguous float32, ``fast=False``): same scores within 1e-5.

Checked on both sets of shipped demo weights (GMIC, DMV; 0.1 and 0.3 mm) with synthetic-cohort images
through the scoring calls, on random weights in the official layout (GMIC-ResNet-18 with 256 x 256 crops
and K = 6; DMV view-wise) at a quarter of the official input sizes, in runs (``RunConfig.fast``) and in
``mammo-robust predict --exact``. The CUDA branches (pinned memory, GMIC autocast) need a GPU and are not
run here.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from core.models import create_model
from core.models.dmv import OFFICIAL_INPUT_SIZE as DMV_SIZE
from core.models.dmv import VIEWS, SplitBreastModel
from core.models.forward import dmv_forward, gmic_forward, is_fast
from core.models.gmic import GMIC
from core.models.gmic import OFFICIAL_INPUT_SIZE as GMIC_SIZE

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from core.phantom import generate_cohort

    return generate_cohort("tiny", tmp_path_factory.mktemp("cohort") / "tiny-0", 0)


@pytest.fixture(scope="module")
def exam(tiny):
    from core.imaging import load_mammogram
    from core.manifest import read_manifest

    df = read_manifest(tiny)
    first = df[df["exam_id"] == df["exam_id"].iloc[0]]
    return {f"{r.laterality}-{r.view}": load_mammogram(r.path) for r in first.itertuples(index=False)}


def _versions(mammogram):
    from core.perturb import PreparedImage

    image = PreparedImage(mammogram.pixels, mammogram.spacing_mm)
    return {
        "none": image.pixels,
        "lowpass 1": image.apply("lowpass", 1.0),
        "noise": image.apply("noise", 1600.0, seed=3),
    }


def test_models_are_fast_by_default_and_exact_on_request():
    fast = create_model("gmic", "demo", device="cpu")
    exact = create_model("gmic", "demo", device="cpu", fast=False)
    assert is_fast(fast) and not is_fast(exact)
    convs = [k for k, v in exact.state_dict().items() if v.ndim == 4 and v.shape[1] > 1 and v.shape[2] > 1]
    assert convs
    for key in convs:
        assert fast.state_dict()[key].is_contiguous(memory_format=torch.channels_last)
        assert not exact.state_dict()[key].is_contiguous(memory_format=torch.channels_last)
    assert not is_fast(torch.nn.Linear(2, 2))  # any other module takes the exact path


@pytest.mark.parametrize("weights", ["demo", "demo-fast"])
def test_demo_weights_fast_scores_within_tolerance_of_exact(exam, weights):
    """Both demo sets: 0.1 mm (the official input sizes) and 0.3 mm."""
    from core.models import score_exam, score_image

    for arch in ("gmic", "dmv"):
        fast = create_model(arch, weights, device="cpu")
        exact = create_model(arch, weights, device="cpu", fast=False)
        if arch == "gmic":
            image = exam["L-CC"]
            a, b = (score_image(m, image, _versions(image)) for m in (fast, exact))
        else:
            per_view = {v: _versions(m) for v, m in exam.items()}
            versions = {k: {v: per_view[v][k] for v in exam} for k in per_view["L-CC"]}
            a, b = (score_exam(m, exam, versions, samples=2) for m in (fast, exact))
        assert [s.version for s in a] == [s.version for s in b]
        pairs = zip(a, b, strict=True)
        diff = max(max(abs(x.benign - y.benign), abs(x.malignant - y.malignant)) for x, y in pairs)
        assert diff <= TOLERANCE, f"{arch}: fast and exact differ by {diff:.2e}"


def _fast_copy(model):
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    fast.fast_inference = True
    return fast


def test_official_layout_random_weights_at_reduced_size():
    """GMIC and DMV in the official layout (random weights), inputs a quarter of the official sizes."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    gmic = GMIC().eval()
    h, w = (s // 4 for s in GMIC_SIZE)
    x = rng.standard_normal((2, h, w)).astype(np.float32)
    fast = _fast_copy(gmic)
    np.testing.assert_allclose(gmic_forward(fast, x), gmic_forward(gmic, x), rtol=0, atol=TOLERANCE)
    xt = torch.from_numpy(x)[:, None]
    with torch.inference_mode():  # the saliency maps and the patches GMIC looks at are the same
        a, b = gmic(xt), fast(xt.contiguous(memory_format=torch.channels_last))
    assert torch.equal(a["patch_locations"], b["patch_locations"])
    assert float((a["saliency_map"] - b["saliency_map"]).abs().max()) <= TOLERANCE

    dmv = SplitBreastModel(1).eval()
    inputs = {
        v: rng.standard_normal((2, *(s // 4 for s in DMV_SIZE[v.split("-")[1]]))).astype(np.float32)
        for v in VIEWS
    }
    np.testing.assert_allclose(
        dmv_forward(_fast_copy(dmv), inputs), dmv_forward(dmv, inputs), rtol=0, atol=TOLERANCE
    )


def test_runs_are_fast_by_default_and_exact_on_request(tiny, tmp_path, monkeypatch):
    from core.runs import RunConfig, create_run, execute_run, load_scores

    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "data"))
    scores = {}
    for fast in (True, False):
        config = RunConfig(
            model="gmic", manifest=str(tiny), weights="demo-fast", device="cpu", max_images=4,
            perturbations={"lowpass": [2]}, **({} if fast else {"fast": False}),
        )  # fmt: skip
        assert config.fast is fast
        run_id = create_run(config)
        assert execute_run(run_id) == "done"
        scores[fast] = load_scores(run_id)
    merged = scores[True].merge(scores[False], on=["perturbation", "image_id"], suffixes=("_f", "_e"))
    assert len(merged) == 8
    for col in ("score_benign", "score_malignant"):
        assert np.abs(merged[f"{col}_f"] - merged[f"{col}_e"]).max() <= TOLERANCE


def test_predict_exact_option(tiny, tmp_path):
    from core.cli import main
    from core.manifest import read_manifest

    paths = list(read_manifest(tiny)["path"][:2])
    tables = []
    for extra in ([], ["--exact"]):
        out = tmp_path / f"p{len(extra)}.csv"
        assert main(["predict", "gmic", *paths, "--weights", "demo-fast", "--out", str(out), *extra]) == 0
        tables.append(pd.read_csv(out))
    a, b = (t[["benign_pred", "malignant_pred"]].to_numpy() for t in tables)
    # the CSV holds 6 decimals: the paths agree to its last digit
    np.testing.assert_allclose(a, b, rtol=0, atol=1.01e-6)
