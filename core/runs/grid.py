"""The conditions of a run: the unperturbed one, the perturbation grid, and the matched-noise baselines.

Matched baseline (Oleszkiewicz et al. 2021). For each perturbation P at severity s (and seed), the run's
first pass perturbs every image of the cohort and measures the L2 norm of the change,
``||P(x) - x||_2`` over the whole image in model units. Their mean over the cohort is the norm ``N(P, s)``.
The baseline condition ``"matched-P"`` at severity s adds to each image Gaussian noise rescaled to exactly
that norm (:func:`core.perturb.matched_noise`); its per-pixel standard deviation is about
``N / sqrt(pixels)``. The ``parameter`` of a baseline row is ``N`` (model units, L2). Gaussian noise itself
gets no baseline: it already is one.

Explicit parameters (``RunConfig.parameters``). A value on the perturbation's grid is that severity; the
others get severities ``EXPLICIT_SEVERITY + 1, + 2, ...`` in order of strength (falling radius for the
low-pass, rising for the others), so a condition stays unique by ``(perturbation, severity)`` and its
``parameter`` column holds the value. Curves and tables read the parameter, never these indices.

Matched baselines and their parameter. A ``"matched-P"`` row at severity s matches the ``P`` condition at
severity s (:func:`matched_target`): draw it at that condition's parameter. Its own ``parameter`` is the L2
norm N; its per-pixel noise std in model units is ``N / sqrt(n_pixels)`` of the images it was measured on
(:func:`core.metrics.context.matched_std`; the image size is in the run's ``matched_pixels`` meta when the
worker records it, else read from the cohort's headers by :func:`core.runs.context.run_context`).

Seeds. Noise, shuffling and matched noise use a seed per image, derived from the condition's seed and the
image id (:func:`image_seed`), so images of the same size do not all get the same noise field, and an
image's perturbation does not depend on which other images are in the run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from core.metrics.scores import MATCHED_PREFIX, UNPERTURBED
from core.runs.config import SEEDED, RunConfig


@dataclass(frozen=True)
class Condition:
    """One perturbation setting of a run.

    ``perturbation`` is a registry name, ``"none"`` or ``"matched-<name>"``; ``parameter`` is in the
    perturbation's unit (radius in cycles/mm, std in model units, grid in patches a side, or the matched
    noise's L2 norm); ``seed`` is the condition's seed (0 for the deterministic filters).
    """

    perturbation: str
    severity: int
    parameter: float
    seed: int = 0

    @property
    def key(self) -> str:
        """Stable text key, unique within a run: ``"lowpass|2|0"``."""
        return f"{self.perturbation}|{self.severity}|{self.seed}"

    @property
    def is_matched(self) -> bool:
        return self.perturbation.startswith(MATCHED_PREFIX)

    @property
    def base(self) -> str:
        """The registry perturbation behind it (``"lowpass"`` for ``"matched-lowpass"``)."""
        return self.perturbation[len(MATCHED_PREFIX) :] if self.is_matched else self.perturbation


UNPERTURBED_CONDITION = Condition(UNPERTURBED, 0, 0.0, 0)
EXPLICIT_SEVERITY = 100


def severity_parameters(config: RunConfig) -> dict[str, list[tuple[int, float]]]:
    """Per perturbation, ``(severity, parameter)`` of the run: its grid severities, then its explicit
    parameters (a value on the grid takes that severity; the others ``EXPLICIT_SEVERITY + k`` by
    strength). Ordered by severity."""
    from core.perturb import PERTURBATIONS

    out: dict[str, list[tuple[int, float]]] = {}
    for name in dict.fromkeys([*config.perturbations, *config.parameters]):
        pert = PERTURBATIONS[name]
        pairs = {int(s): float(pert.parameter_for(int(s))) for s in config.perturbations.get(name, [])}
        on_grid = {v: s for s, v in pert.grid.items()}
        extra = []
        for value in config.parameters.get(name, []):
            if value in on_grid:
                pairs[on_grid[value]] = float(value)
            else:
                extra.append(float(value))
        extra.sort(reverse=name == "lowpass")  # weakest first: a low-pass is stronger at a smaller radius
        pairs.update({EXPLICIT_SEVERITY + k: v for k, v in enumerate(extra, start=1)})
        out[name] = sorted(pairs.items())
    return out


def base_conditions(config: RunConfig) -> list[Condition]:
    """The unperturbed condition, then each perturbation x severity (x seed for the seeded ones), explicit
    parameters included (:func:`severity_parameters`)."""
    out = [UNPERTURBED_CONDITION]
    for name, pairs in severity_parameters(config).items():
        seeds = config.seeds if name in SEEDED else [0]
        for sev, value in pairs:
            for seed in seeds:
                out.append(Condition(name, int(sev), value, int(seed)))
    return out


def matched_target(condition: Condition) -> tuple[str, int]:
    """``(perturbation, severity)`` of the condition a matched baseline matches (``"matched-lowpass"`` at
    severity 2 -> ``("lowpass", 2)``); look its parameter up among the run's conditions."""
    return condition.base, condition.severity


def matched_targets(config: RunConfig) -> list[Condition]:
    """The conditions whose change norms the first pass measures (all but none and noise)."""
    if not config.matched_baseline:
        return []
    return [c for c in base_conditions(config) if c.perturbation not in (UNPERTURBED, "noise")]


def norm_key(condition: Condition) -> str:
    """Key of the matched norm of a target: ``"<perturbation>|<severity>"`` (pooled over its seeds)."""
    return f"{condition.perturbation}|{condition.severity}"


def matched_conditions(config: RunConfig, norms: dict[str, float]) -> list[Condition]:
    """The baseline conditions, one per target perturbation x severity x seed of the run.

    ``norms`` maps :func:`norm_key` of each target to the mean change norm over the cohort (and over the
    target's seeds, for shuffling).
    """
    out, seen = [], set()
    for target in matched_targets(config):
        key = norm_key(target)
        if key in seen:
            continue
        seen.add(key)
        for seed in config.seeds:
            out.append(
                Condition(MATCHED_PREFIX + target.perturbation, target.severity, float(norms[key]), int(seed))
            )
    return out


def n_conditions(config: RunConfig) -> int:
    """Number of conditions of a run, baselines included (known before their norms are)."""
    return len(base_conditions(config)) + len(matched_conditions(config, _ones(config)))


def _ones(config: RunConfig) -> dict[str, float]:
    return {norm_key(c): 1.0 for c in matched_targets(config)}


def image_seed(seed: int, image_id: str) -> int:
    """Seed of a seeded perturbation on one image: CRC-32 of ``"<seed>:<image_id>"`` (stable everywhere)."""
    return zlib.crc32(f"{int(seed)}:{image_id}".encode())
