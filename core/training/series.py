"""Checkpoint series of a training run (``mammo-robust train --save-every N``): the study's Figure 2 follows a
model's AUC against low-pass severity over the checkpoints of one training run.

Every ``N``-th epoch the state that epoch was validated with (the moving average with ``--ema``) is written
(and epoch 0, the starting state, where a run from ``--init`` validates it before its first step) beside the
run's checkpoint as ``<out>-epoch<NN>.pt`` (``gmic-run.pt`` -> ``gmic-run-epoch03.pt``): the naming
convention that :func:`core.metrics.parameters.checkpoint_of` reads back, so a results table holding several
of them draws one ramp of curves per run (``docs/results.md``). Each file is a ``mammo-robust/1`` checkpoint
(:func:`core.models.weights.save_checkpoint`, float16 like the run's own file unless ``half`` is off) whose
``config["training"]`` names the run, the epoch and that epoch's validation AUC. Epochs cut short by early
stopping or the time budget are not padded: the series ends at the last multiple of ``N`` that ran.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from core.models import ModelError


def epoch_path(out: str | Path, epoch: int) -> Path:
    """The checkpoint of epoch ``epoch`` (>= 0) of the run writing ``out``: ``<stem>-epoch<NN><suffix>``,
    the epoch zero-padded to two digits (``.pt`` when ``out`` has no suffix)."""
    out = Path(out)
    suffix = out.suffix or ".pt"
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}-epoch{int(epoch):02d}{suffix}")


def check_save_every(save_every: int) -> None:
    """``save_every`` is 0 (no series) or a positive number of epochs."""
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 0:
        raise ModelError(
            f"train: --save-every must be 0 (off) or a number of epochs >= 1, not {save_every!r}"
        )


class CheckpointSeries:
    """Writes the checkpoints of every ``every``-th epoch of one run (nothing when ``every`` is 0).

    Parameters
    ----------
    out : str or Path
        The run's own checkpoint; the series lies beside it (:func:`epoch_path`).
    every : int
        Epochs between two checkpoints (0: off).
    arch, variant : str
        As :func:`core.models.weights.save_checkpoint` stores them.
    config : dict
        The run's checkpoint config (geometry); copied, with a ``training`` record per epoch.
    record : dict
        What every epoch's record repeats (command, seed, cohort, augmentation).
    half : bool
        Store floating tensors as float16.
    """

    def __init__(
        self,
        out: str | Path,
        every: int,
        *,
        arch: str,
        variant: str,
        config: dict[str, Any],
        record: dict[str, Any],
        half: bool = True,
    ) -> None:
        check_save_every(every)
        self.out, self.every = Path(out), every
        self.arch, self.variant, self.half = arch, variant, half
        self.config, self.record = config, record
        self.written: list[Path] = []

    def due(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0: the starting state, 1, 2, ...) is one of the series."""
        return bool(self.every) and epoch >= 0 and epoch % self.every == 0

    def save(self, epoch: int, model: Any, val_auc: float | None) -> Path | None:
        """Write ``model`` (the state validated at the end of ``epoch``) if the epoch is due; its path."""
        if not self.due(epoch):
            return None
        from core.models.weights import save_checkpoint

        config = copy.deepcopy(self.config)
        config["training"] = {
            **copy.deepcopy(self.record),
            "run": self.out.name,
            "epoch": int(epoch),
            "val_auc": None if val_auc is None else round(float(val_auc), 4),
            "save_every": self.every,
        }
        path = epoch_path(self.out, epoch)
        save_checkpoint(path, model, arch=self.arch, variant=self.variant, config=config, half=self.half)
        self.written.append(path)
        return path
