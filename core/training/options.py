"""What a training run does: :class:`TrainOptions`, their checks, and the command line that repeats them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.models import ModelError

#: Defaults: the geometry of the fast demo weights (``weights="demo-fast"``), 0.3 mm pixels (NYU
#: constants / 3) and windows of 672 x 448 px = 202 x 134 mm covering the synthetic 200 x 128 mm detector;
#: GMIC patches of 40 x 40 px (12 mm; that GMIC was trained with ``--crop-shape 48x48 --K 4``, see
#: ``docs/demo-weights.md``). The 0.1 mm demo weights pass the official geometry explicitly
#: (``scripts/train-demo-weights-0.1mm.sh``).
FAST_SPACING_MM = 0.3
FAST_INPUT_SIZE = {
    "gmic": {"CC": (672, 448), "MLO": (672, 448)},
    "dmv": {"CC": (672, 448), "MLO": (672, 448)},
}
FAST_GMIC_CROP = (40, 40)
#: Noisy windows per image (the model's window noise, seeded) cached for frozen-trunk training (DMV and
#: GMIC ``--freeze-trunk``) by default, besides the deterministic one.
TRUNK_WINDOW_SAMPLES = 4


@dataclass
class TrainOptions:
    """What :func:`train` does. Lengths in pixels of the resampled image, spacing in mm, time in minutes.

    ``cohort`` is ``"demo"``/``"tiny"`` (synthetic cohorts of :func:`core.phantom.ensure_cohort`; another
    seed as ``"demo-3"``) or the path of a manifest CSV with train/val/test splits. Every image of the
    ``extra_train`` cohorts (same forms) joins the training split; their exams must not occur in
    ``cohort``. ``window_samples`` is the number of noisy windows per image cached for frozen-trunk
    training. ``augment`` entries are ``"name:parameter"`` with a name of
    :data:`core.perturb.PERTURBATIONS` (e.g. ``"lowpass:2.0"``, radius in cycles/mm); with one entry and
    ``augment_prob`` 1 every training sample is perturbed and validation uses the perturbed images too
    (:func:`validation_crop`). ``save_every`` N > 0 writes the checkpoint of every N-th epoch beside ``out``
    (:mod:`core.training.series`). ``channels_last`` keeps the weights and the inputs of the convolutions in
    that memory format (faster at the official geometry; results differ from the default by float rounding).
    ``resume`` keeps the loop's state after every epoch and continues an earlier call of the same run
    (:mod:`core.training.resume`).
    """

    arch: str
    out: str
    cohort: str = "demo"
    extra_train: list[str] = field(default_factory=list)
    epochs: int = 6
    seed: int = 0
    lr: float = 3e-4
    batch_size: int = 8
    spacing_mm: float = FAST_SPACING_MM
    input_size: dict[str, tuple[int, int]] | None = None
    crop_shape: tuple[int, int] = FAST_GMIC_CROP
    K: int = 6
    augment: list[str] = field(default_factory=list)
    augment_prob: float = 0.5
    samples_per_epoch: int | None = None
    patience: int = 2
    patch_size: int = 0
    saliency_l1: float = 0.0
    saliency_target: float = 0.0
    dense_target: bool = False
    ema: float = 0.0
    init_trunk: str | None = None
    freeze_trunk: bool = False
    unfreeze_stages: int = 0
    window_samples: int = TRUNK_WINDOW_SAMPLES
    max_minutes: float | None = None
    test_samples: int = 10
    threads: int | None = 1
    half: bool = True
    channels_last: bool = False
    resume: bool = False
    cache: bool = True
    init: str | None = None
    device: str = "auto"
    workers: int = 1
    save_every: int = 0


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the checkpoint, the curves files, the per-epoch history and the test AUCs."""

    checkpoint: Path
    curves_csv: Path
    curves_png: Path | None
    history: list[dict[str, Any]]
    val_auc: float | None
    test_auc: float | None
    test_breast_auc: float | None
    checkpoints: list[Path] = field(default_factory=list)


def parse_augment(items: Sequence[str]) -> list[tuple[str, float]]:
    """``["lowpass:2.0"]`` -> ``[("lowpass", 2.0)]``, checking the names against the perturbation registry."""
    from core.perturb import PERTURBATIONS

    out = []
    for item in items:
        name, sep, value = str(item).partition(":")
        if name not in PERTURBATIONS:
            raise ModelError(
                f"augmentation {item!r}: unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}"
            )
        try:
            parameter = float(value) if sep else float(PERTURBATIONS[name].grid[3])
        except (ValueError, KeyError, TypeError, IndexError):
            raise ModelError(f"augmentation {item!r}: write it as name:parameter, e.g. lowpass:2.0") from None
        out.append((name, parameter))
    return out


def check_options(options: TrainOptions) -> str:
    """The checks that need no model: architecture, epochs, batch size, EMA decay; returns the architecture
    (``"gmic"`` or ``"dmv"``)."""
    arch = options.arch.lower()
    if arch not in ("gmic", "dmv"):
        raise ModelError(f"train: unknown architecture {options.arch!r}; expected 'gmic' or 'dmv'")
    if options.epochs < 1 or options.batch_size < 1:
        raise ModelError("train: epochs and batch_size must be at least 1")
    if not 0.0 <= options.ema < 1.0:
        raise ModelError(f"train: --ema must be in [0, 1), got {options.ema}")
    if not 0.0 <= options.augment_prob <= 1.0:
        raise ModelError(f"train: --augment-prob must be in [0, 1], got {options.augment_prob}")
    size = options.input_size
    if arch == "gmic" and size is not None and tuple(size["CC"]) != tuple(size["MLO"]):
        raise ModelError("train: GMIC reads every view at one input size; --input-size-mlo is for DMV")
    from core.training.series import check_save_every

    check_save_every(options.save_every)
    return arch


def validation_crop(options: TrainOptions) -> int:
    """Which crop of the validation images the epochs are validated on: the perturbed one (1) when every
    training sample is perturbed (one ``augment`` entry, ``augment_prob`` 1: the study's Figure 4 filters in
    training and inference), else the clean one (0)."""
    return 1 if len(options.augment) == 1 and options.augment_prob >= 1.0 else 0


def used_crops(n_crops: int, augment_prob: float) -> list[int]:
    """The crops of an image that training samples can draw (:func:`core.training.windows.crop_index`):
    all of them, only the perturbed ones with ``augment_prob`` 1, only the clean one with 0."""
    if n_crops <= 1 or augment_prob <= 0.0:
        return [0]
    return list(range(1, n_crops)) if augment_prob >= 1.0 else list(range(n_crops))


def check_modes(options: TrainOptions, arch: str) -> None:
    """The checks of the training modes (frozen trunk, patches, dense target, EMA, window samples)."""
    if options.freeze_trunk and not (
        options.init_trunk if arch == "dmv" else options.init or options.init_trunk
    ):
        raise ModelError(
            "train: --freeze-trunk needs "
            + ("--init-trunk" if arch == "dmv" else "--init (a GMIC checkpoint) or --init-trunk")
        )
    if options.freeze_trunk and options.patch_size:
        raise ModelError("train: --freeze-trunk trains on whole windows, without --patch-size")
    if options.dense_target and (arch != "gmic" or not options.patch_size or options.ema):
        raise ModelError("train: --dense-target is for GMIC with --patch-size (and without --ema)")
    if options.ema and arch == "dmv" and options.freeze_trunk:
        raise ModelError(
            "train: --ema is for training with live windows or GMIC --freeze-trunk, not DMV heads"
        )
    if options.window_samples < 0:
        raise ModelError(f"train: --window-samples must be 0 or more, not {options.window_samples}")
    if options.resume and (options.dense_target or (arch == "dmv" and options.freeze_trunk)):
        raise ModelError(
            "train: --resume is for whole-window training and GMIC on a frozen trunk, not for dense "
            "pretraining or DMV heads on a frozen trunk"
        )
    if options.unfreeze_stages and not (options.freeze_trunk and 0 < options.unfreeze_stages <= 5):
        raise ModelError("train: --unfreeze-stages is 1..5 (of the column's 5 stages) with --freeze-trunk")


def check_data(options: TrainOptions, arch: str, manifest: Path, train_items: Sequence[Any]) -> None:
    """The checks that need the training images: some exist, and findings for the modes that use them."""
    if not train_items:
        raise ModelError(f"{manifest}: no image in the train split")
    if options.patch_size and (arch != "gmic" or not any(it.findings for it in train_items)):
        raise ModelError(f"{manifest}: patch training is for GMIC on a cohort with findings.csv (synthetic)")
    if options.saliency_target and (
        arch != "gmic" or options.patch_size or not any(it.findings for it in train_items)
    ):
        raise ModelError(
            f"{manifest}: --saliency-target is for GMIC on whole windows of a cohort with findings.csv "
            "(synthetic)"
        )


def cohort_name(cohort: str) -> str:
    """A cohort as the training record names it: the synthetic cohort's name or the manifest's file name."""
    return Path(cohort).name if Path(cohort).suffix else cohort


def command_line(options: TrainOptions) -> str:
    """The ``mammo-robust train`` command that reproduces ``options``."""
    parts = ["mammo-robust", "train", options.arch, "--cohort", options.cohort]
    parts += ["--epochs", str(options.epochs), "--seed", str(options.seed), "--out", options.out]
    for item in options.augment:
        parts += ["--augment", item]
    for cohort in options.extra_train:
        parts += ["--extra-train", cohort]
    defaults = TrainOptions(arch=options.arch, out=options.out)
    names = ("lr", "batch_size", "spacing_mm", "augment_prob", "samples_per_epoch", "patience", "max_minutes")
    names += ("patch_size", "saliency_l1", "saliency_target", "ema", "init", "init_trunk", "unfreeze_stages")
    names += ("window_samples", "save_every")
    for name in (*names, "test_samples", "K", "threads"):
        value = getattr(options, name)
        if value != getattr(defaults, name):
            parts += [f"--{name.replace('_', '-')}", str(value)]
    if options.freeze_trunk:
        parts.append("--freeze-trunk")
    if options.dense_target:
        parts.append("--dense-target")
    if options.channels_last:
        parts.append("--channels-last")
    if tuple(options.crop_shape) != tuple(defaults.crop_shape):
        parts += ["--crop-shape", "x".join(str(v) for v in options.crop_shape)]
    if options.input_size is not None:
        cc, mlo = (tuple(options.input_size[v]) for v in ("CC", "MLO"))
        parts += ["--input-size", "x".join(str(v) for v in cc)]
        if mlo != cc:
            parts += ["--input-size-mlo", "x".join(str(v) for v in mlo)]
    return " ".join(parts)
