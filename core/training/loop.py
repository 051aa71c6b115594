"""The training loop: :func:`train` builds the model, reads the data, runs the epochs with early stopping,
scores the test split and writes the checkpoint with its training record and curves."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.models import ModelError
from core.models.forward import to_model
from core.models.inputs import EXAM_VIEWS
from core.models.predict import predict_dmv_crops
from core.training.allocator import retain_freed_blocks
from core.training.checkpoints import cpu_state, load_init, load_trunk
from core.training.curves import write_curves
from core.training.data import exams, extra_train_items, load_items, manifest_path
from core.training.dense import train_dense
from core.training.evaluation import auc, breast_auc, dmv_auc, dmv_labels, dmv_val_probs, gmic_scores
from core.training.frozen import gmic_cache, gmic_cached_scores, gmic_top, train_dmv_top
from core.training.objectives import (
    balanced_order,
    bce,
    dmv_nll,
    lr_schedule,
    saliency_target_loss,
    should_stop,
)
from core.training.options import (
    FAST_INPUT_SIZE,
    TrainOptions,
    TrainResult,
    check_data,
    check_modes,
    check_options,
    cohort_name,
    command_line,
    parse_augment,
    validation_crop,
)
from core.training.resume import finished, load_state, restore, resume_path, save_state
from core.training.series import CheckpointSeries
from core.training.windows import crop_index, patch, train_windows


def train(options: TrainOptions, *, log: Callable[[str], None] = print) -> TrainResult:
    """Train GMIC or DMV (view-wise, image only) and write a ``mammo-robust/1`` checkpoint plus curves.

    Recipe and options: :mod:`core.training` and ``docs/demo-weights.md``. Seeded: the same options give
    the same weights on the same machine.

    Returns
    -------
    TrainResult
    """
    run = _Training(options, log)
    run.fit()
    return run.finish()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _variant(arch: str) -> str:
    """The variant a trained checkpoint is stored as: DMV view-wise image only, GMIC-ResNet-18."""
    return "image-only" if arch == "dmv" else "resnet18"


class _Training:
    """The state of one :func:`train` call: model, data splits, best state so far, history."""

    def __init__(self, options: TrainOptions, log: Callable[[str], None]) -> None:
        import torch

        from core.models.registry import build_model, resolve_device

        self.options, self.log = options, log
        self.arch = arch = check_options(options)
        retain_freed_blocks()
        if options.threads:
            torch.set_num_threads(int(options.threads))
        self.device = resolve_device(options.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        augment = parse_augment(options.augment)
        torch.manual_seed(options.seed)
        self.rng = np.random.RandomState(options.seed)
        input_size = options.input_size or FAST_INPUT_SIZE[arch]
        self.config: dict[str, Any] = {
            "input_size": {k: list(v) for k, v in input_size.items()},
            "spacing_mm": options.spacing_mm,
            "demo": True,
        }
        if arch == "gmic":
            self.config.update(crop_shape=list(options.crop_shape), K=options.K, percent_t=0.05)
        self.model = build_model(arch, "image-only" if arch == "dmv" else None, self.config)
        self.spec = self.model.spec
        if options.init:
            load_init(self.model, options.init, self.config)
        if options.init_trunk:
            load_trunk(self.model, options.init_trunk)
        check_modes(options, arch)
        self.val_crop = validation_crop(options)
        self.series = CheckpointSeries(
            options.out,
            options.save_every,
            arch=arch,
            variant=_variant(arch),
            config=self.config,
            record={
                "cohort": cohort_name(options.cohort),
                "command": command_line(options),
                "seed": options.seed,
                "augment": list(options.augment),
                "augment_prob": options.augment_prob if options.augment else 0.0,
            },
            half=options.half,
        )
        self.model.to(self.device)
        if options.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._load_data(augment)
        self.t_start = time.time()
        self.history: list[dict[str, Any]] = []
        self.best: tuple[float, Any, int] = (-1.0, None, 0)  # (auc, state on the CPU, epoch)
        # With --ema, validation, the kept state and the test score use the moving average of the weights
        # (and of the batch-norm statistics), which smooths the step-to-step noise of small batches.
        self.averaged = (
            torch.optim.swa_utils.AveragedModel(
                self.model,
                multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(options.ema),
                use_buffers=True,
            )
            if options.ema
            else None
        )
        self.scored = self.model if self.averaged is None else self.averaged.module
        self.stages = options.unfreeze_stages
        self.cache = None
        if arch == "gmic" and options.freeze_trunk:
            self.cache = gmic_cache(
                self.model, self.split["train"], self.split[self.val_name], self.spec, options, log
            )
        self._setup_sampling()

    def _load_data(self, augment: list[tuple[str, float]]) -> None:
        """The cohort's crops split into train (plus the extra cohorts), val and test."""
        options = self.options
        self.manifest = manifest_path(options.cohort)
        items = load_items(
            self.manifest, self.spec, augment, cache=options.cache, workers=options.workers, log=self.log
        )
        self.split = {s: [it for it in items if it.split == s] for s in ("train", "val", "test")}
        self.split["train"] += extra_train_items(items, self.spec, augment, options, self.log)
        check_data(options, self.arch, self.manifest, self.split["train"])
        self.val_name = "val" if self.split["val"] else "train"
        if self.val_name == "train":
            self.log(
                "no validation split: early stopping uses the training images (the AUC is then optimistic)"
            )

    def _setup_sampling(self) -> None:
        """Class weights and the sampling flags of the training units (images for GMIC, exams for DMV)."""
        import torch

        if self.arch == "gmic":
            self.train_items = self.split["train"]
            self.flags = np.array([it.malignant for it in self.train_items])
            benign = np.array([it.benign for it in self.train_items])
            pos_w_benign = float(min(10.0, (benign == 0).sum() / max(1, benign.sum())))
            self.pos_w = torch.tensor([pos_w_benign, 1.0], device=self.device)
            self.n_epoch = self.options.samples_per_epoch or len(self.train_items)
            self.patch_windows: dict[tuple[str, int], tuple[np.ndarray, float, float]] = {}
            return
        self.train_exams = list(exams(self.split["train"]).values())
        if not self.train_exams:
            raise ModelError(f"{self.manifest}: no complete four-view exam in the train split")
        labels = np.array([dmv_labels(e) for e in self.train_exams])
        self.flags = labels[:, 2:].max(axis=1)
        pos = labels.sum(axis=0)
        pos_w = torch.tensor(np.minimum(10.0, (len(labels) - pos) / np.maximum(pos, 1)), dtype=torch.float32)
        pos_w[2:] = 1.0  # malignant balanced by sampling
        self.pos_w = pos_w.to(self.device)
        self.n_epoch = self.options.samples_per_epoch or len(self.train_exams)

    def validate(self) -> float | None:
        """Malignant AUC on the validation split (GMIC per image, DMV per breast)."""
        split, scored = self.split[self.val_name], self.scored
        if self.cache is not None:
            scores = gmic_cached_scores(scored, self.cache, self.stages, self.options.batch_size)
            return auc(scores[:, 1], [it.malignant for it in split])
        if self.arch == "gmic":
            scores = gmic_scores(scored, split, self.spec, self.options.batch_size, self.val_crop)
            return auc(scores[:, 1], [it.malignant for it in split])
        val_exams = list(exams(split).values())
        val_labels = np.array([dmv_labels(e) for e in val_exams]).reshape(-1, 4)
        return dmv_auc(dmv_val_probs(scored, val_exams, self.spec, self.val_crop), val_labels)

    def keep_if_best(self, epoch: int, val_auc: float | None) -> bool:
        """Keep a CPU copy of the scored state if ``val_auc`` beats the best so far; whether it did."""
        score = -1.0 if val_auc is None else val_auc
        if score > self.best[0] or self.best[1] is None:
            self.best = (score, cpu_state(self.scored), epoch)
            return True
        return False

    def fit(self) -> None:
        """The epochs: a separate stage for DMV heads on a frozen trunk or GMIC's dense pretraining, else
        the main loop (after an epoch-0 validation of an ``--init`` checkpoint, unless resuming)."""
        options, log = self.options, self.log
        self.dense_score = None
        self.paused = False
        if self.arch == "dmv" and options.freeze_trunk:
            val_exams = list(exams(self.split[self.val_name]).values())
            self.history, self.best = train_dmv_top(
                self.model, self.spec, self.train_exams, val_exams, options, self.rng, log, self.series.save
            )
            return
        if options.dense_target:
            self.history, self.best, self.dense_score = train_dense(
                self.model,
                self.spec,
                self.train_items,
                self.split[self.val_name],
                options,
                self.rng,
                log,
                self.series.save,
            )
            return
        state = load_state(options) if options.resume else None
        if options.init and state is None:
            val_auc = self.validate()
            self.history.append({"epoch": 0, "train_loss": None, "val_auc": _round(val_auc), "minutes": 0.0})
            self.keep_if_best(0, val_auc)
            self.series.save(0, self.scored, val_auc)
            log(f"epoch 0 (from {Path(options.init).name}): {self.val_name} malignant AUC {_round(val_auc)}")
        self._epochs(state)

    def _epochs(self, state: dict[str, Any] | None) -> None:
        """The main loop over epochs, from the first or (``state``) after the last one of an earlier call."""
        import torch

        options, log = self.options, self.log
        steps_per_epoch = -(-self.n_epoch // options.batch_size)
        opt = torch.optim.Adam(self.model.parameters(), lr=options.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(options.epochs * steps_per_epoch))
        parts = {"model": self.model, "optimizer": opt, "schedule": sched}
        if self.averaged is not None:
            parts["average"] = self.averaged
        first, bad_epochs, before = (1, 0, 0.0) if state is None else self._resume(state, parts)
        epoch = first - 1
        with ThreadPoolExecutor(max(1, options.workers)) as threads:
            for epoch in range(first, options.epochs + 1):
                self.model.train()
                order = balanced_order(self.flags, self.n_epoch, self.rng)
                losses = []
                for s in range(0, len(order), options.batch_size):
                    loss = self.batch_loss(order[s : s + options.batch_size], threads)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    if self.averaged is not None:
                        self.averaged.update_parameters(self.model)
                    losses.append(loss.item())
                elapsed = (time.time() - self.t_start) / 60
                val_auc = self.validate()
                row = {
                    "epoch": epoch,
                    "train_loss": round(float(np.mean(losses)), 5),
                    "val_auc": _round(val_auc),
                    "minutes": round(before + elapsed, 2),
                }
                self.history.append(row)
                self.series.save(epoch, self.scored, val_auc)
                log(
                    f"epoch {epoch}: loss {row['train_loss']:.4f}, {self.val_name} malignant AUC "
                    f"{row['val_auc']}, {elapsed:.1f} min"
                )
                bad_epochs = 0 if self.keep_if_best(epoch, val_auc) else bad_epochs + 1
                if options.resume:
                    progress = {"history": self.history, "bad_epochs": bad_epochs, "best_auc": self.best[0],
                                "best_state": self.best[1], "best_epoch": self.best[2], "rng": self.rng,
                                "series": [str(p) for p in self.series.written]}  # fmt: skip
                    save_state(options, epoch, parts, progress)
                if should_stop(bad_epochs, elapsed, options, log):
                    break
        # a time budget that ends the run before its last epoch (and before early stopping) pauses it
        self.paused = epoch < options.epochs and bad_epochs < options.patience
        if options.resume and self.paused:
            log(f"paused after epoch {epoch}: the same command with --resume continues from there")

    def _resume(self, state: dict[str, Any], parts: dict[str, Any]) -> tuple[int, int, float]:
        """Restore an earlier call's state (:mod:`core.training.resume`); returns the first epoch to run,
        the epochs without improvement so far and the minutes the earlier calls took."""
        self.rng = restore(state, parts)
        self.history = list(state["history"])
        self.best = (float(state["best_auc"]), state["best_state"], int(state["best_epoch"]))
        self.series.written = [Path(p) for p in state["series"]]
        name = resume_path(self.options.out).name
        self.log(f"resuming after epoch {state['epoch']} of {self.options.epochs} ({name})")
        before = float(self.history[-1]["minutes"]) if self.history else 0.0
        return int(state["epoch"]) + 1, int(state["bad_epochs"]), before

    def batch_loss(self, idx: np.ndarray, threads: ThreadPoolExecutor) -> Any:
        """The loss of one batch of training units (their indices ``idx``)."""
        return self._gmic_loss(idx, threads) if self.arch == "gmic" else self._dmv_loss(idx, threads)

    def _gmic_loss(self, idx: np.ndarray, threads: ThreadPoolExecutor) -> Any:
        import torch

        options, items, device, rng = self.options, self.train_items, self.device, self.rng
        masks = None
        if self.cache is not None:
            picks = [(crop_index(items[i], rng, options.augment_prob), i) for i in idx]
            h, w, targets = self.cache.batch(picks, rng)
            masks = None if targets is None else targets.to(device)
            y = torch.tensor([[items[i].benign, items[i].malignant] for i in idx])
            out = gmic_top(self.model, w.to(device), to_model(h, self.model), self.stages)
        else:
            if options.patch_size:
                size, prob = options.patch_size, options.augment_prob
                pairs = [patch(items[i], self.spec, rng, size, prob, self.patch_windows) for i in idx]
                x = np.stack([p for p, _ in pairs])
                y = torch.tensor([lab for _, lab in pairs])
            else:
                batch = [items[i] for i in idx]
                with_masks = options.saliency_target > 0
                x = train_windows(batch, self.spec, rng, options.augment_prob, threads, with_masks)
                y = torch.tensor([[it.benign, it.malignant] for it in batch])
            if x.ndim == 4:  # (N, 3, rows, cols): windows with their finding masks (--saliency-target)
                x, masks = x[:, 0], torch.from_numpy(np.ascontiguousarray(x[:, 1:])).to(device)
            out = self.model(to_model(torch.from_numpy(np.ascontiguousarray(x))[:, None], self.model))
        y = y.to(device, torch.float32)
        loss = sum(bce(out[k], y, self.pos_w) for k in ("y_fusion", "y_global", "y_local"))
        if masks is not None:
            loss = loss + options.saliency_target * saliency_target_loss(out["saliency_map"], masks)
        # GMIC's sparsity term: the mean saliency (both classes), which keeps the map off normal tissue
        return loss + options.saliency_l1 * out["saliency_map"].mean()

    def _dmv_loss(self, idx: np.ndarray, threads: ThreadPoolExecutor) -> Any:
        import torch

        batch = [self.train_exams[i] for i in idx]
        prob = self.options.augment_prob
        x = {v: train_windows([e[v] for e in batch], self.spec, self.rng, prob, threads) for v in EXAM_VIEWS}
        out = self.model({v: to_model(torch.from_numpy(a)[:, None], self.model) for v, a in x.items()})
        y = torch.tensor(np.array([dmv_labels(e) for e in batch]), dtype=torch.float32).to(self.device)
        # (N, 4, 2) log-probabilities of each head
        return dmv_nll(out, y, self.pos_w)

    def test(self) -> tuple[float | None, float | None]:
        """Malignant AUC of the kept state on the test split (per image and per breast; DMV per breast),
        scored the way :mod:`core.models.predict` predicts (GMIC one window, DMV ``test_samples``)."""
        self.model.load_state_dict(self.best[1])
        self.model.eval()
        tests = self.split["test"]
        if not tests:
            return None, None
        if self.arch == "gmic":
            if self.dense_score is not None:  # the stage-3 score the dense stage was validated with
                malignant = self.dense_score(tests)
            else:
                malignant = gmic_scores(self.model, tests, self.spec, self.options.batch_size)[:, 1]
            return auc(malignant, [it.malignant for it in tests]), breast_auc(tests, malignant)
        test_exams = list(exams(tests).values())
        crops = [{v: (e[v].crops[0], e[v].geometry) for v in EXAM_VIEWS} for e in test_exams]
        probs = predict_dmv_crops(
            self.model, crops, samples=self.options.test_samples, seed=0, workers=self.options.workers
        )
        value = dmv_auc(probs, np.array([dmv_labels(e) for e in test_exams]))
        return value, value

    def finish(self) -> TrainResult:
        """Score the test split, write the checkpoint (with its training record) and the curves."""
        from core.models.weights import save_checkpoint

        options, arch, best = self.options, self.arch, self.best
        test_auc, test_breast_auc = self.test()
        self.log(f"best epoch {best[2]} ({self.val_name} AUC {best[0]:.4f}); test malignant AUC {test_auc}")
        self.config["training"] = self._record(test_auc, test_breast_auc)
        out = Path(options.out)
        save_checkpoint(
            out, self.model, arch=arch, variant=_variant(arch), config=self.config, half=options.half
        )
        if options.resume and not self.paused:
            finished(options)
        stem = out.with_suffix("")
        csv_path = stem.parent / f"{stem.name}-curves.csv"
        png = write_curves(
            self.history, csv_path, stem.parent / f"{stem.name}-curves.png", f"{arch} {out.name}"
        )
        if self.series.written:
            self.log(f"checkpoint series: {', '.join(p.name for p in self.series.written)}")
        return TrainResult(
            out,
            csv_path,
            png,
            self.history,
            None if best[0] < 0 else best[0],
            test_auc,
            test_breast_auc,
            list(self.series.written),
        )

    def _record(self, test_auc: float | None, test_breast_auc: float | None) -> dict[str, Any]:
        """The training record stored in the checkpoint's config (``model.spec.config["training"]``)."""
        import torch

        options, arch, best = self.options, self.arch, self.best
        return {
            "cohort": cohort_name(options.cohort),
            "extra_train": [cohort_name(c) for c in options.extra_train],
            "command": command_line(options),
            "seed": options.seed,
            "epochs_run": len(self.history),
            "best_epoch": best[2],
            "val_auc": None if best[0] < 0 else round(best[0], 4),
            "test_auc": None if test_auc is None else round(test_auc, 4),
            "test_auc_level": "image" if arch == "gmic" else "breast",
            "test_breast_auc": None if test_breast_auc is None else round(test_breast_auc, 4),
            "test_samples": options.test_samples if arch == "dmv" else 0,
            "augment": list(options.augment),
            "augment_prob": options.augment_prob if options.augment else 0.0,
            "validated_on": options.augment[0] if self.val_crop else "unperturbed",
            "save_every": options.save_every,
            "checkpoints": [p.name for p in self.series.written],
            "patch_size": options.patch_size,
            "dense_target": options.dense_target,
            "init_trunk": Path(options.init_trunk).name if options.init_trunk else None,
            "freeze_trunk": options.freeze_trunk,
            "unfreeze_stages": options.unfreeze_stages,
            "n_train": len(self.split["train"]),
            "n_val": len(self.split["val"]),
            "n_test": len(self.split["test"]),
            "minutes": round((time.time() - self.t_start) / 60, 2),
            "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "torch": str(torch.__version__),
            "options": {k: v for k, v in asdict(options).items() if k not in ("out",)},
        }
