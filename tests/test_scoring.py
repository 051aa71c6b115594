"""The scoring call per architecture: model inputs prepared without a model, batched forward passes and named
results, equal to the predictions of the command line on the same pixels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.models import ModelError
from core.models.forward import DMV_LABELS, Score, score_units
from core.models.inputs import EXAM_VIEWS, DmvInputs, GmicInputs, ImageInputs, crop_for_model, prepare_input
from core.models.predict import (
    inputs_per_image,
    predict_dmv_crops,
    predict_gmic,
    prepare_unit,
    score_exam,
    score_image,
)
from core.models.registry import build_model
from tests.test_predict import SMALL, _breast, _exam

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gmic():
    torch.manual_seed(0)
    return build_model("gmic", config={**SMALL, "crop_shape": [48, 48], "K": 3}).eval()


@pytest.fixture(scope="module")
def dmv():
    torch.manual_seed(0)
    return build_model("dmv", "image-only", SMALL).eval()


def _versions(m, n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = {"clean": m.pixels}
    for k in range(n - 1):
        out[f"noise{k}"] = (m.pixels + rng.normal(0, 300, m.pixels.shape)).astype(np.float32)
    return out


def test_gmic_inputs_are_prepared_without_a_model_on_the_clean_geometry(gmic):
    m = _breast("R", "MLO", seed=2)
    versions = _versions(m)
    image = ImageInputs(m, gmic.spec)  # only the spec: no forward pass
    unit = prepare_unit([image], ((k, [px]) for k, px in versions.items()))
    assert isinstance(unit, GmicInputs) and unit.versions == list(versions) and unit.laterality == "R"
    for px, window in zip(versions.values(), unit.windows, strict=True):
        expected = prepare_input(replace(m, pixels=px), gmic.spec, geometry=image.geometry)
        assert window.dtype == np.float32 and window.tobytes() == expected.tobytes()
    assert inputs_per_image("gmic") == 1 and inputs_per_image("dmv", samples=0) == 1
    assert inputs_per_image("dmv", samples=4) == 4


def test_score_image_names_the_versions_and_equals_predict_gmic(gmic):
    m = _breast("L", "CC", seed=1)
    versions = _versions(m)
    scores = score_image(gmic, m, versions, batch_size=2)
    assert [s.version for s in scores] == list(versions) and all(s.laterality == "L" for s in scores)
    geo = ImageInputs(m, gmic.spec).geometry
    mams = [replace(m, pixels=px) for px in versions.values()]
    expected = predict_gmic(gmic, mams, batch_size=2, geometries=[geo] * len(mams))
    got = np.array([[s.benign, s.malignant] for s in scores])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got[0], got[1])  # the versions are scored, not the clean image five times


def test_score_units_packs_windows_across_units_and_yields_them_in_order(gmic):
    """Batches span units (3 windows per unit, batch 4): the results are those of unit-by-unit scoring, in
    stream order, with on_forward counting every input."""
    units = []
    for k, (lat, view) in enumerate([("L", "CC"), ("R", "MLO"), ("L", "MLO")]):
        m = _breast(lat, view, seed=10 + k)
        units.append(
            (k, prepare_unit([ImageInputs(m, gmic.spec)], ((v, [px]) for v, px in _versions(m, 3).items())))
        )
    fed = []
    streamed = list(score_units(gmic, iter(units), batch_size=4, on_forward=lambda s, n: fed.append(n)))
    assert [tag for tag, _ in streamed] == [0, 1, 2] and fed == [4, 4, 1]
    for (tag, scores), (_, unit) in zip(streamed, units, strict=True):
        alone = next(score_units(gmic, [(tag, unit)], batch_size=1))[1]
        np.testing.assert_allclose([s.malignant for s in scores], [s.malignant for s in alone], atol=1e-6)
        assert [s.version for s in scores] == unit.versions


@pytest.mark.parametrize("samples", [0, 3])
def test_score_exam_names_breasts_and_equals_predict_dmv(dmv, samples):
    exam = _exam(4)
    rng = np.random.default_rng(1)
    noisy = {
        v: exam[v].pixels + rng.normal(0, 400, exam[v].pixels.shape).astype(np.float32) for v in EXAM_VIEWS
    }
    versions = {"clean": {v: exam[v].pixels for v in EXAM_VIEWS}, "noisy": noisy}
    scores = score_exam(dmv, exam, versions, samples=samples, seed=5, batch_size=2)
    assert [(s.version, s.laterality) for s in scores] == [
        ("clean", "L"),
        ("clean", "R"),
        ("noisy", "L"),
        ("noisy", "R"),
    ]
    geos = {v: crop_for_model(exam[v], dmv.spec, view=v)[1] for v in EXAM_VIEWS}
    for k, version in enumerate(versions):
        crops = {
            v: crop_for_model(
                replace(exam[v], pixels=versions[version][v]), dmv.spec, geometry=geos[v], view=v
            )
            for v in EXAM_VIEWS
        }
        p = predict_dmv_crops(dmv, [crops], samples=samples, seed=5, batch_size=2)[0]
        left, right = scores[2 * k], scores[2 * k + 1]
        assert DMV_LABELS == ("left_benign", "right_benign", "left_malignant", "right_malignant")
        assert (left.benign, right.benign, left.malignant, right.malignant) == tuple(float(v) for v in p)


def test_dmv_inputs_hold_crops_and_cut_the_same_windows_for_every_version(dmv):
    exam = _exam(6)
    images = [ImageInputs(exam[v], dmv.spec, view=v) for v in ("R-MLO", "L-CC", "R-CC", "L-MLO")]  # any order
    unit = prepare_unit(images, [("a", [im.pixels for im in images])] * 2, samples=2, seed=3)
    assert isinstance(unit, DmvInputs) and unit.versions == ["a", "a"]
    w0, w1 = unit.windows(0), unit.windows(1)
    assert set(w0) == set(EXAM_VIEWS) and all(w0[v].shape[0] == 2 for v in EXAM_VIEWS)
    assert all(np.array_equal(w0[v], w1[v]) for v in EXAM_VIEWS)  # a fresh RandomState(seed) per version
    with pytest.raises(ModelError, match="needs the views"):
        prepare_unit(images[:3], [("a", [im.pixels for im in images[:3]])])
    with pytest.raises(ModelError, match="one image at a time"):
        gmic_spec_images = [ImageInputs(exam["L-CC"], build_model("gmic", config=SMALL).spec)] * 2
        prepare_unit(gmic_spec_images, [])


def test_score_is_a_plain_named_record():
    s = Score("lowpass|2|0", "R", 0.25, 0.75)
    assert (s.version, s.laterality, s.benign, s.malignant) == ("lowpass|2|0", "R", 0.25, 0.75)


def test_dmv_windows_cut_ahead_in_threads_score_the_same(dmv):
    """predict_dmv_crops with windows of several exams cut ahead in threads gives what one thread gives,
    for a generator per exam and for one shared generator (which stays sequential)."""
    exams = []
    for k in (2, 3, 4):
        exam = _exam(k)
        exams.append({v: crop_for_model(exam[v], dmv.spec, view=v) for v in EXAM_VIEWS})
    for shared in (False, True):
        one, many = (
            predict_dmv_crops(dmv, exams, samples=2, seed=1, shared_rng=shared, workers=w) for w in (1, 3)
        )
        np.testing.assert_array_equal(one, many)
