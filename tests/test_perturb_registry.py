"""The perturbation registry and perturb(): names, severity grids, severity 0, parameters, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import ExplorerError
from core.perturb import (
    PERTURBATIONS,
    SEVERITIES,
    PerturbationError,
    gaussian_noise,
    highpass,
    lowpass,
    patch_shuffle,
    perturb,
)

SPACING = (0.1, 0.1)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth breast-like blob with fine texture, 0..4095, 0.1 mm pixels (12.8 x 9.6 mm)."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:128, 0:96]
    blob = 3000 * np.exp(-((rows - 64) ** 2 + (cols - 20) ** 2) / (2 * 35.0**2))
    return np.clip(blob + rng.normal(0, 150, blob.shape), 0, 4095).astype(np.float32)


def test_registry_names_units_and_the_study_settings():
    assert set(PERTURBATIONS) == {"lowpass", "highpass", "noise", "shuffle"}
    assert SEVERITIES == (1, 2, 3, 4, 5)
    for name, entry in PERTURBATIONS.items():
        assert entry.name == name
        assert sorted(entry.grid) == list(SEVERITIES)
        assert entry.parameter and entry.unit and entry.description
    assert PERTURBATIONS["lowpass"].grid[2] == 2.0 and PERTURBATIONS["lowpass"].unit == "cycles/mm"
    assert PERTURBATIONS["highpass"].grid[4] == 2.0
    assert PERTURBATIONS["noise"].grid[5] == 1600.0
    assert PERTURBATIONS["shuffle"].grid[5] == 8
    assert PERTURBATIONS["lowpass"].identity_parameter == math.inf
    assert PERTURBATIONS["highpass"].identity_parameter is None
    with pytest.raises(TypeError):
        PERTURBATIONS["noise"].grid[1] = 5.0  # read-only grids


@pytest.mark.parametrize("name", ["lowpass", "highpass", "noise"])
def test_damage_grows_with_severity(image, name):
    """The distance to the original grows from severity 1 to 5 (the grids are ordered by severity)."""
    distances = [
        float(np.linalg.norm(perturb(image, SPACING, name, s, seed=1).astype(np.float64) - image))
        for s in SEVERITIES
    ]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_severity_zero_and_the_identity_parameter_leave_the_image_unchanged(image, name):
    before = image.copy()
    out = perturb(image, SPACING, name, 0, seed=3)
    assert out.dtype == np.float32 and out.tobytes() == image.tobytes()
    assert not np.shares_memory(out, image)
    entry = PERTURBATIONS[name]
    assert entry.parameter_for(0) == entry.identity_parameter
    if entry.identity_parameter is not None:
        assert entry.apply(image, SPACING, entry.identity_parameter, seed=3).tobytes() == image.tobytes()
    assert np.array_equal(image, before)


def test_perturb_equals_the_direct_functions(image):
    assert perturb(image, SPACING, "lowpass", 3).tobytes() == lowpass(image, SPACING, 1.0).tobytes()
    assert perturb(image, SPACING, "highpass", 4).tobytes() == highpass(image, SPACING, 2.0).tobytes()
    assert perturb(image, SPACING, "noise", 5, seed=4).tobytes() == gaussian_noise(image, 1600, 4).tobytes()
    assert perturb(image, SPACING, "shuffle", 1, seed=2).tobytes() == patch_shuffle(image, 2, 2).tobytes()
    by_parameter = perturb(image, SPACING, "lowpass", parameter=0.7)
    assert by_parameter.tobytes() == lowpass(image, SPACING, 0.7).tobytes()
    anisotropic = perturb(image, (0.1, 0.3), "lowpass", 2)
    assert anisotropic.tobytes() == lowpass(image, (0.1, 0.3), 2.0).tobytes()
    assert (
        perturb(image, SPACING, "shuffle", parameter=8, seed=2).tobytes()
        == patch_shuffle(image, 8, 2).tobytes()
    )


BAD_CALLS = [
    (lambda x: perturb(x, SPACING, "blur", 1), "unknown perturbation 'blur'; known: lowpass"),
    (lambda x: perturb(x, SPACING, "noise"), "exactly one of severity"),
    (lambda x: perturb(x, SPACING, "noise", 2, parameter=10.0), "exactly one of severity"),
    (lambda x: perturb(x, SPACING, "noise", 6), "severity must be an integer 0..5"),
    (lambda x: perturb(x, SPACING, "noise", -1), "severity must be an integer 0..5"),
    (lambda x: perturb(x, SPACING, "noise", 2.5), "severity must be an integer 0..5"),
    (lambda x: perturb(x, SPACING, "lowpass", parameter=-2.0), "radius must be >= 0"),
    (lambda x: perturb(x, SPACING, "shuffle", parameter=500), "does not fit"),
    (lambda x: perturb(x, (0.1, 0.1, 0.1), "noise", 1), "spacing_mm must be a pair"),
    (lambda x: perturb(x, SPACING, "noise", 0, seed=-5), "seed must be"),
    (lambda x: perturb(x[None], SPACING, "noise", 0), "2-D"),
    (lambda x: perturb(x, (0.0, 0.1), "shuffle", 0), "> 0 mm"),
]


@pytest.mark.parametrize(("call", "message"), BAD_CALLS)
def test_bad_calls_raise_a_perturbation_error_naming_the_problem(image, call, message):
    with pytest.raises(PerturbationError, match=message) as info:
        call(image)
    assert isinstance(info.value, ExplorerError) and isinstance(info.value, ValueError)
