"""Gaussian noise, matched noise and patch shuffling: statistics, determinism, purity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.perturb import PerturbationError, gaussian_noise, matched_noise, patch_shuffle

FEW = settings(max_examples=25, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32)


def random_image(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((rows, cols)) * 4095).astype(np.float32)


@FEW
@given(st.floats(1.0, 3000.0), seeds)
def test_noise_has_the_requested_std_and_zero_mean(std, seed):
    x = random_image(64, 64, 1)
    noise = gaussian_noise(x, std, seed).astype(np.float64) - x
    n = noise.size
    assert noise.std() == pytest.approx(std, rel=6 / np.sqrt(2 * n))  # six standard errors
    assert abs(noise.mean()) < 6 * std / np.sqrt(n)


def test_noise_is_not_clipped_and_zero_std_is_the_identity():
    x = random_image(32, 32)
    out = gaussian_noise(x)  # the study's default, std 1600
    assert out.min() < 0 and out.max() > 4095
    assert gaussian_noise(x, 0.0).tobytes() == x.tobytes()


@FEW
@given(st.floats(1e-3, 1e6), seeds, st.integers(1, 40), st.integers(1, 40))
def test_matched_noise_has_the_requested_l2_norm(norm, seed, rows, cols):
    x = random_image(rows, cols, 2)
    out = matched_noise(x, norm, seed)
    measured = float(np.linalg.norm(out.astype(np.float64) - x))
    # Only the float32 sum rounds: at most half an ulp of the result per pixel.
    rounding = 0.5 * np.sqrt(x.size) * float(np.spacing(np.abs(out).max()))
    assert abs(measured - norm) <= rounding + 1e-9 * norm


def test_matched_noise_points_the_same_way_as_gaussian_noise_with_that_seed():
    x = random_image(50, 40)
    direction = gaussian_noise(x, 1.0, 9).astype(np.float64) - x
    matched = matched_noise(x, 5000.0, 9).astype(np.float64) - x
    cosine = direction.ravel() @ matched.ravel() / np.linalg.norm(direction) / np.linalg.norm(matched)
    assert cosine > 0.9999
    assert matched_noise(x, 0.0).tobytes() == x.tobytes()
    assert float(np.linalg.norm(matched_noise(np.zeros((1, 1)), 3.0))) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "call",
    [
        lambda x, seed: gaussian_noise(x, 800.0, seed),
        lambda x, seed: matched_noise(x, 1e4, seed),
        lambda x, seed: patch_shuffle(x, 4, seed),
    ],
    ids=["noise", "matched", "shuffle"],
)
def test_same_seed_same_bytes_other_seed_other_bytes_input_untouched(call):
    x = random_image(40, 36, 3)
    before = x.copy()
    first, again, other = call(x, 7), call(x, 7), call(x, 8)
    assert first.dtype == np.float32 and first.shape == x.shape
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()
    assert np.array_equal(x, before)
    assert not np.shares_memory(first, x)


def patches(image: np.ndarray, grid: int) -> list[bytes]:
    ph, pw = image.shape[0] // grid, image.shape[1] // grid
    cells = [(i, j) for i in range(grid) for j in range(grid)]
    return [image[i * ph : (i + 1) * ph, j * pw : (j + 1) * pw].tobytes() for i, j in cells]


@FEW
@given(st.integers(1, 8), st.integers(0, 12), st.integers(0, 12), seeds)
def test_patch_shuffle_permutes_whole_patches_and_keeps_the_border(grid, extra_rows, extra_cols, seed):
    rows, cols = grid * 3 + extra_rows, grid * 2 + extra_cols
    x = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)  # every pixel distinct
    out = patch_shuffle(x, grid, seed)
    assert sorted(patches(out, grid)) == sorted(patches(x, grid))  # the multiset of patches is kept
    assert np.array_equal(np.sort(out, axis=None), np.sort(x, axis=None))  # a permutation of the pixels
    ph, pw = rows // grid, cols // grid
    assert np.array_equal(out[grid * ph :, :], x[grid * ph :, :])  # remainder border in place
    assert np.array_equal(out[:, grid * pw :], x[:, grid * pw :])


@pytest.mark.parametrize("grid", [2, 3, 8])
def test_patch_shuffle_moves_every_patch(grid):
    x = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    for seed in range(30):  # a plain uniform 2 x 2 permutation would be the identity for ~1 seed in 24
        out = patch_shuffle(x, grid, seed)
        assert all(a != b for a, b in zip(patches(out, grid), patches(x, grid), strict=True))


def test_patch_shuffle_grid_one_is_the_identity():
    x = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    assert patch_shuffle(x, 1).tobytes() == x.tobytes()
    assert patch_shuffle(x.astype(np.uint16), 2.0, 1).dtype == np.float32


BAD_CALLS = [
    (lambda: gaussian_noise(np.zeros((4, 4)), -1.0), "std must be a finite number >= 0"),
    (lambda: gaussian_noise(np.zeros((4, 4)), float("nan")), "std must be"),
    (lambda: gaussian_noise(np.zeros((4, 4)), 10.0, seed=-1), "seed must be an integer >= 0"),
    (lambda: gaussian_noise(np.zeros((4, 4)), 10.0, seed=1.5), "seed"),
    (lambda: gaussian_noise(np.zeros((2, 2, 2)), 10.0), "2-D"),
    (lambda: matched_noise(np.zeros((4, 4)), -3.0), "norm must be"),
    (lambda: matched_noise(np.zeros((4, 4)), float("inf")), "norm must be"),
    (lambda: matched_noise([["a"]], 1.0), "real numbers"),
    (lambda: patch_shuffle(np.zeros((4, 6)), 5), "does not fit an image of 4 x 6"),
    (lambda: patch_shuffle(np.zeros((4, 6)), 0), "grid must be a positive integer"),
    (lambda: patch_shuffle(np.zeros((4, 6)), 2.5), "grid must be a positive integer"),
    (lambda: patch_shuffle(np.zeros((4, 6)), True), "grid must be a positive integer"),
    (lambda: patch_shuffle(np.array([[1.0, np.inf]]), 1), "NaN or infinite"),
]


@pytest.mark.parametrize(("call", "message"), BAD_CALLS)
def test_bad_input_raises_a_perturbation_error_naming_the_problem(call, message):
    with pytest.raises(PerturbationError, match=message):
        call()
