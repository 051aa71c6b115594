"""Training that continues where it stopped (``mammo-robust train ... --resume``).

At the official geometry an epoch of whole-window GMIC training takes minutes on a GPU and up to an hour on
a CPU, longer than a session may last. With ``--resume`` the training loop writes its whole state after
every epoch to ``<out stem>.resume.pt`` beside ``--out`` (weights, optimiser, learning-rate schedule,
moving average, the numpy and torch random generators, the history, the best state so far and the epochs
without improvement). The same command run again continues after the last finished epoch, and gives the
weights an uninterrupted run would give. A ``--max-minutes`` budget then pauses the run: the checkpoint of
the best epoch so far is written as usual and the state is kept for the next call; the state file is
removed once the planned epochs ran or early stopping ended the run.

What may differ between the calls: ``--max-minutes``, ``--threads``, ``--workers``, ``--device`` and
``--no-cache``; anything else must be the same, or the state is refused with a ModelError naming what
changed. Covered: whole-window GMIC and DMV training and GMIC on a frozen trunk (the frozen-trunk cache is
rebuilt on resuming: it is deterministic). Dense pretraining and DMV heads on a frozen trunk are not.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.models import ModelError

#: Options that may change between the calls of one resumed run.
FREE_OPTIONS = ("max_minutes", "threads", "workers", "device", "cache", "resume")


def resume_path(out: str | Path) -> Path:
    """Where the state of the run writing ``out`` is kept: ``gmic-top.pt`` -> ``gmic-top.resume.pt``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.resume.pt")


def _fixed(options: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(options).items() if k not in FREE_OPTIONS}


def save_state(options: Any, epoch: int, parts: dict[str, Any], progress: dict[str, Any]) -> Path:
    """Write the state after ``epoch``: ``parts`` maps names to objects with ``state_dict()`` (model,
    optimiser, schedule, moving average), ``progress`` holds plain values and tensors (history, best
    state, epochs without improvement) and ``rng`` (a numpy RandomState)."""
    import torch

    rng = progress.pop("rng")
    name, keys, pos, has_gauss, gauss = rng.get_state()
    state = {
        "options": _plain(_fixed(options)),
        "epoch": epoch,
        "parts": {k: _plain(v.state_dict()) for k, v in parts.items()},
        "numpy_rng": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },  # fmt: skip
        "torch_rng": torch.get_rng_state(),
        **_plain(progress),
    }
    path = resume_path(options.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, so that the state loads with ``weights_only``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def load_state(options: Any) -> dict[str, Any] | None:
    """The state of an earlier call of this run, or None when there is none. Refuses (ModelError) a state
    written by other options, or a file that is not such a state."""
    import torch

    path = resume_path(options.out)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and why, never unpickle code
        raise ModelError(f"{path}: not a training state that --resume can read ({exc})") from None
    if not isinstance(state, dict) or "options" not in state or "epoch" not in state:
        raise ModelError(f"{path}: not a training state that --resume can read")
    changed = sorted(k for k, v in _fixed(options).items() if state["options"].get(k) != v)
    if changed:
        raise ModelError(
            f"{path}: written by a run with other options ({', '.join(changed)}); run the same command, or "
            "delete the file to start again"
        )
    return state


def restore(state: dict[str, Any], parts: dict[str, Any]) -> np.random.RandomState:
    """Load the saved ``parts`` and the torch generator; returns the numpy generator as saved."""
    import torch

    for name, obj in parts.items():
        obj.load_state_dict(state["parts"][name])
    torch.set_rng_state(state["torch_rng"])
    saved = state["numpy_rng"]
    rng = np.random.RandomState()
    keys = saved["keys"].numpy().astype(np.uint32)
    rng.set_state(("MT19937", keys, saved["pos"], saved["has_gauss"], saved["gauss"]))
    return rng


def finished(options: Any) -> None:
    """The run is over (all epochs, or early stopping): remove its state."""
    resume_path(options.out).unlink(missing_ok=True)
