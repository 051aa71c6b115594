"""Where a training run starts from and what it keeps: initial weights from checkpoints, and CPU copies of
the best state so far."""

from __future__ import annotations

from typing import Any

from core.models import ModelError
from core.models.weights import load_checkpoint


def cpu_state(model: Any) -> dict[str, Any]:
    """A copy of the model's state on the CPU (the best epoch so far, kept off the GPU)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_init(model: Any, path: str, config: dict[str, Any]) -> None:
    """Start from a checkpoint of the same architecture and input geometry (fine-tuning, more training)."""
    ckpt = load_checkpoint(path)
    if ckpt.arch != model.spec.arch:
        raise ModelError(f"{path}: --init needs a {model.spec.arch} checkpoint, this one holds {ckpt.arch}")
    for key in ("spacing_mm", "input_size", "crop_shape", "K"):
        if key in config and ckpt.config.get(key) != config[key]:
            raise ModelError(
                f"{path}: --init checkpoint has {key} {ckpt.config.get(key)!r}, this training {config[key]!r}"
            )
    model.load_state_dict(ckpt.state_dict)


def load_trunk(model: Any, path: str) -> None:
    """Copy a ResNet-22 trunk into both DMV columns: GMIC's ``ds_net`` or a DMV checkpoint's ``cc`` column."""
    ckpt = load_checkpoint(path)
    prefix = "ds_net." if ckpt.arch == "gmic" else "four_view_resnet.cc."
    sub = {k[len(prefix) :]: v for k, v in ckpt.state_dict.items() if k.startswith(prefix)}
    if not sub:
        raise ModelError(f"{path}: no ResNet-22 trunk ({prefix}*) in this checkpoint")
    for column in (model.four_view_resnet.cc, model.four_view_resnet.mlo):
        column.load_state_dict(sub)
