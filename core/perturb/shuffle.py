"""Patch shuffling: cut the image into a grid of equal patches and permute them."""

from __future__ import annotations

import numpy as np

from core import validate
from core.errors import PerturbationError


def patch_shuffle(pixels: np.ndarray, grid: int = 8, seed: int = 0) -> np.ndarray:
    """Cut the image into ``grid x grid`` equal patches and put them back in a random order.

    The study cut each image into 64 patches (an 8 x 8 grid) and shuffled them. Here every patch is
    ``floor(rows / grid)`` x ``floor(cols / grid)`` pixels, so the grid covers the whole image but for a
    remainder border: the last ``rows mod grid`` rows and ``cols mod grid`` columns (fewer than ``grid``
    pixels each) stay in place. Patches are square when the image is; a 3328 x 2560 mammogram gives
    416 x 320 pixel patches. (Square patches on a non-square image would leave a wide unshuffled strip along
    the longer side, which keeps the global structure the perturbation is meant to destroy.) The
    permutation is drawn uniformly among those that move every patch (a derangement, by rejection: about
    e = 2.7 draws on average), so no severity leaves an image, or any patch of it, where it was; with a
    plain uniform permutation a 2 x 2 grid would return the input unchanged once in 24 images.

    Parameters
    ----------
    pixels : array_like
        2-D image in model units; not modified.
    grid : int
        Patches per side, 1 <= grid <= min(rows, cols); 1 is the identity. The study used 8.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    numpy.ndarray
        New float32 array, same shape: a permutation of the input's pixels.

    Raises
    ------
    PerturbationError
        Bad image, a grid that is not a positive integer or is larger than the image's shorter side, or a
        bad seed.
    """
    image = validate.image_2d(pixels, "patch_shuffle", PerturbationError)
    grid = validate.count(grid, "grid", "patch_shuffle", PerturbationError)
    seed = validate.seed(seed, "patch_shuffle", PerturbationError)
    rows, cols = image.shape
    if grid > min(rows, cols):
        raise PerturbationError(
            f"patch_shuffle: grid {grid} x {grid} does not fit an image of {rows} x {cols} pixels "
            f"(grid must be at most {min(rows, cols)})"
        )
    out = np.array(image, dtype=np.float32, copy=True)
    if grid == 1:
        return out
    ph, pw = rows // grid, cols // grid
    order = _derangement(grid * grid, np.random.default_rng(seed))
    # (grid, ph, grid, pw) -> (grid*grid, ph, pw): patch i is the i-th in row-major order.
    patches = image[: grid * ph, : grid * pw].reshape(grid, ph, grid, pw).swapaxes(1, 2).reshape(-1, ph, pw)
    shuffled = patches[order].reshape(grid, grid, ph, pw).swapaxes(1, 2).reshape(grid * ph, grid * pw)
    out[: grid * ph, : grid * pw] = shuffled
    return out


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` (n >= 2) with no fixed point, uniform among those."""
    identity = np.arange(n)
    while True:
        order = rng.permutation(n)
        if not np.any(order == identity):
            return order
