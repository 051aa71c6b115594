"""``mammo-robust train {gmic,dmv}``: train demo weights on a cohort (see ``docs/demo-weights.md``)."""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS, e.g. 400x256, got {text!r}") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"input size {text!r} is too small (at least 32x32)")
    return h, w


def register(subparsers) -> None:
    from core.training.options import FAST_INPUT_SIZE, TrainOptions

    defaults = TrainOptions(arch="gmic", out="")  # the options' defaults, shown in the help
    size = "x".join(str(v) for v in FAST_INPUT_SIZE["gmic"]["CC"])
    p = subparsers.add_parser(
        "train",
        help="train GMIC or DMV (view-wise, image only) on a cohort manifest",
        description="Train a reduced-size GMIC or DMV on the built-in synthetic cohort (or a manifest with "
        "train/val/test splits), with early stopping on the validation split, and write a mammo-robust/1 "
        "checkpoint with its training curves (CSV and PNG) and test AUC. Seeded: the same command gives the "
        "same weights on the same machine. Defaults: the geometry of the shipped demo weights "
        f"({defaults.spacing_mm:g} mm pixels, {size} windows).",
    )
    p.add_argument("arch", choices=["gmic", "dmv"])
    _data_options(p, defaults)
    p.add_argument("--out", required=True, help="checkpoint to write, e.g. assets/weights/gmic-demo.pt")
    p.add_argument(
        "--epochs", type=int, default=defaults.epochs, help=f"maximum epochs (default {defaults.epochs})"
    )
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument(
        "--spacing-mm",
        type=float,
        default=defaults.spacing_mm,
        help=f"model pixel spacing in mm (default {defaults.spacing_mm:g})",
    )
    p.add_argument("--input-size", type=_size, help=f"model window ROWSxCOLS for all views (default {size})")
    p.add_argument(
        "--input-size-mlo",
        type=_size,
        help="DMV: the MLO views' window ROWSxCOLS when it differs from the CC one (--input-size), e.g. the "
        "official 2974x1748 beside 2677x1942",
    )
    p.add_argument("--K", type=int, default=defaults.K, help="GMIC patches per image")
    crop = "x".join(str(v) for v in defaults.crop_shape)
    p.add_argument("--crop-shape", type=_size, help=f"GMIC patch ROWSxCOLS in model pixels (default {crop})")
    p.add_argument(
        "--samples-per-epoch", type=int, help="training samples per epoch (default: the train split)"
    )
    p.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="epochs without validation gain before stopping",
    )
    _mode_options(p, defaults)
    _run_options(p, defaults)
    p.set_defaults(func=run)


def _data_options(p: argparse.ArgumentParser, defaults) -> None:
    p.add_argument(
        "--cohort",
        default=defaults.cohort,
        help="'demo', 'tiny', another seed of one as 'demo-SEED', or a manifest CSV "
        f"(default {defaults.cohort})",
    )
    p.add_argument(
        "--extra-train",
        action="append",
        default=[],
        metavar="COHORT",
        help="a further cohort (same forms, e.g. demo-1) whose images, all splits, are training images; "
        "validation and test stay those of --cohort (repeatable)",
    )
    p.add_argument(
        "--augment",
        action="append",
        default=[],
        metavar="NAME:PARAM",
        help="perturbation augmentation from the core.perturb registry, e.g. lowpass:2.0 (repeatable)",
    )
    p.add_argument(
        "--augment-prob",
        type=float,
        default=defaults.augment_prob,
        help=f"share of samples perturbed (default {defaults.augment_prob:g}; 1 with one --augment: every "
        "sample perturbed and the validation images too, train-time filtering as in the study's Figure 4)",
    )


def _mode_options(p: argparse.ArgumentParser, defaults) -> None:
    """Training modes: patches, saliency targets, dense pretraining, EMA, initial weights, frozen trunk."""
    p.add_argument(
        "--patch-size",
        type=int,
        default=0,
        help="GMIC: train on PATCH x PATCH px cuts of the model window around the cohort's findings "
        "(synthetic cohorts; 0 = whole windows)",
    )
    p.add_argument(
        "--init", help="start from this checkpoint of the same architecture and input size (fine-tuning)"
    )
    p.add_argument(
        "--saliency-l1",
        type=float,
        default=0.0,
        help="GMIC: weight of the mean saliency added to the loss (GMIC's sparsity term; default 0)",
    )
    p.add_argument(
        "--saliency-target",
        type=float,
        default=0.0,
        help="GMIC, whole windows: weight of a loss that pulls the saliency map towards the cohort's "
        "findings (findings.csv of a synthetic cohort; default 0 = image labels only)",
    )
    p.add_argument(
        "--dense-target",
        action="store_true",
        help="GMIC with --patch-size: pretrain the global network and saliency layer on the cohort's finding "
        "masks (a stage-3 head per 1/32 cell, the saliency map per 1/64 cell; findings.csv of a synthetic "
        "cohort), validated by the stage-3 head's highest malignant cell per window",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="decay of an exponential moving average of the weights, updated every step; validation, "
        "the kept checkpoint and the test AUC use the average (e.g. 0.995; default 0 = the raw weights)",
    )
    p.add_argument(
        "--init-trunk",
        help="start the ResNet-22 trunk from this GMIC (ds_net) or DMV checkpoint: DMV both columns, GMIC "
        "its global network (the rest of GMIC starts random)",
    )
    p.add_argument(
        "--freeze-trunk",
        action="store_true",
        help="keep the ResNet-22 trunk fixed (DMV: needs --init-trunk, trains the heads; GMIC: needs --init "
        "or --init-trunk, trains saliency, local and fusion networks on cached windows)",
    )
    p.add_argument(
        "--unfreeze-stages",
        type=int,
        default=0,
        help="with --freeze-trunk: also train the last N (1-5) of the trunk's 5 stages and its final "
        "batch norm, on cached outputs of the frozen stages (default 0)",
    )
    p.add_argument(
        "--window-samples",
        type=int,
        default=defaults.window_samples,
        help="with --freeze-trunk: noisy windows cached per training image besides the deterministic one "
        f"(default {defaults.window_samples}; the cache holds 1 + N windows of every image in memory)",
    )


def _run_options(p: argparse.ArgumentParser, defaults) -> None:
    """Budget, test-time samples and where the work runs."""
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this time budget")
    p.add_argument(
        "--save-every",
        type=int,
        default=defaults.save_every,
        metavar="N",
        help="also write the checkpoint of every N-th epoch beside --out, named OUT-epochNN.pt (a series for "
        "AUC against severity per checkpoint, the study's Figure 2; default 0 = off)",
    )
    p.add_argument(
        "--test-samples", type=int, default=defaults.test_samples, help="DMV augmented windows at test time"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="torch CPU threads (default 1: faster on a shared machine)",
    )
    p.add_argument(
        "--device", default=defaults.device, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="processes that read the images for the crop cache, threads that build training windows",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the preprocessed-crop cache")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the training state after every epoch (OUT stem + .resume.pt) and continue an earlier call "
        "of the same command from its last epoch; a --max-minutes budget then pauses the run (whole-window "
        "training and GMIC --freeze-trunk)",
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="weights and convolution inputs in channels_last memory format (at 0.1 mm on the CPU 1.35x per "
        "whole-window GMIC step, 2x per frozen-trunk cache pass; equal to the default up to float rounding)",
    )


def options_from_args(args: argparse.Namespace):
    """The :class:`core.training.TrainOptions` of parsed ``mammo-robust train`` arguments."""
    from core.training import TrainOptions
    from core.training.options import FAST_GMIC_CROP, FAST_INPUT_SIZE

    size = None
    if args.input_size is not None or args.input_size_mlo is not None:
        cc = args.input_size or FAST_INPUT_SIZE[args.arch]["CC"]
        size = {"CC": cc, "MLO": args.input_size_mlo or cc}
    return TrainOptions(
        arch=args.arch,
        out=args.out,
        cohort=args.cohort,
        extra_train=list(args.extra_train),
        epochs=args.epochs,
        seed=args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
        spacing_mm=args.spacing_mm,
        input_size=size,
        K=args.K,
        crop_shape=args.crop_shape or FAST_GMIC_CROP,
        augment=list(args.augment),
        augment_prob=args.augment_prob,
        samples_per_epoch=args.samples_per_epoch,
        patience=args.patience,
        max_minutes=args.max_minutes,
        patch_size=args.patch_size,
        saliency_l1=args.saliency_l1,
        saliency_target=args.saliency_target,
        dense_target=args.dense_target,
        ema=args.ema,
        init=args.init,
        init_trunk=args.init_trunk,
        freeze_trunk=args.freeze_trunk,
        unfreeze_stages=args.unfreeze_stages,
        window_samples=args.window_samples,
        test_samples=args.test_samples,
        threads=args.threads,
        cache=not args.no_cache,
        channels_last=args.channels_last,
        resume=args.resume,
        device=args.device,
        workers=args.workers,
        save_every=args.save_every,
    )


def run(args: argparse.Namespace) -> int:
    from core.training import train

    result = train(options_from_args(args))
    print(f"wrote {result.checkpoint} ({result.curves_csv.name}); test malignant AUC {result.test_auc}")
    for path in result.checkpoints:
        print(f"wrote {path}")
    return 0
