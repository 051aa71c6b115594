"""Where a training run starts from and what it keeps: initial weights from checkpoints, and CPU copies of
the best state so far."""

from __future__ import annotations

from pathlib import Path
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
    """Copy a ResNet-22 trunk (GMIC's ``ds_net`` or a DMV checkpoint's ``cc`` column) into both columns of a
    DMV model, or into GMIC's global network ``ds_net`` (the saliency layer, local network, attention and
    fusion keep their random initialisation: a GMIC trained from a given trunk)."""
    ckpt = load_checkpoint(path)
    prefix = "ds_net." if ckpt.arch == "gmic" else "four_view_resnet.cc."
    sub = {k[len(prefix) :]: v for k, v in ckpt.state_dict.items() if k.startswith(prefix)}
    if not sub:
        raise ModelError(f"{path}: no ResNet-22 trunk ({prefix}*) in this checkpoint")
    columns = (
        (model.ds_net,)
        if model.spec.arch == "gmic"
        else (model.four_view_resnet.cc, model.four_view_resnet.mlo)
    )
    try:
        for column in columns:
            column.load_state_dict(sub)
    except RuntimeError as exc:  # a trunk of other channel counts
        raise ModelError(f"{path}: its ResNet-22 trunk does not fit this model ({exc})") from None


def write_trunk(src: str | Path, dst: str | Path) -> Path:
    """Write the global network (``ds_net``) of the GMIC checkpoint ``src`` alone to ``dst`` (float16, with
    ``src``'s config and training record and ``"trunk_only": true``): what ``--init-trunk`` reads.

    For the output of dense pretraining, which trains only ``ds_net`` (and the small saliency layer) and
    leaves the local network at its random initialisation: at 0.1 mm 5.6 MB instead of 28 MB, small
    enough to carry to a lent GPU beside the working tree. Anything that needs a whole GMIC refuses the file
    with a ModelError naming the missing keys.
    """
    import torch

    from core.models.registry import build_model
    from core.models.weights import load_into, save_checkpoint

    ckpt = load_checkpoint(src)
    if ckpt.arch != "gmic":
        raise ModelError(f"{src}: a trunk file is made from a GMIC checkpoint, this one holds {ckpt.arch}")
    model = build_model("gmic", ckpt.variant, dict(ckpt.config))
    load_into(model, ckpt.state_dict, str(src))
    holder = torch.nn.Module()
    holder.add_module("ds_net", model.ds_net)
    config = {**ckpt.config, "trunk_only": True}
    return save_checkpoint(dst, holder, arch="gmic", variant=ckpt.variant, config=config, half=True)
