"""DMV, the NYU "Deep Multi-View" breast cancer classifier (spec section 1).

Three heads on the same shared-column trunk:

* :class:`SplitBreastModel` -- the view-wise model of ``run.sh`` (``sample_image_model.p``, C=1;
  ``sample_imageheatmaps_model.p``, C=3). Input: a mapping ``{"L-CC", "R-CC", "L-MLO", "R-MLO"} ->
  (N, C, H, W)``; output ``{"CC": (N, 4, 2), "MLO": (N, 4, 2)}`` log-probabilities, label axis
  [left_benign, right_benign, left_malignant, right_malignant], class axis [negative, positive].
* :class:`ImageBreastModel` -- the image-wise model (``ImageOnly__ModeImage_weights.p``): one head per view,
  output ``{view: (N, 4, 2)}`` of which rows 0-1 (benign, malignant of that image) are meaningful.
* :class:`SingleImageBreastModel` -- one column and one head, ``(N, C, H, W) -> (N, 2, 2)`` log-probabilities
  [benign, malignant] x [negative, positive]; loaded from an image-wise checkpoint with
  :meth:`SingleImageBreastModel.load_from_image_wise`.

Inputs are standardised (spec 0.7), right-facing; channel 0 is the image, channels 1 and 2 (C=3) the benign
and malignant heatmaps. Official window sizes: CC 2677 x 1942, MLO 2974 x 1748; any size >= 11 px works.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from core.models import ModelError
from core.models.resnet import ResNetV2, resnet22, resnet22_output_size

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
OFFICIAL_INPUT_SIZE = {"CC": (2677, 1942), "MLO": (2974, 1748)}
LABELS = ("left_benign", "right_benign", "left_malignant", "right_malignant")
TRAIN_NOISE_STD = 0.01


def _view_angle(view: str) -> str:
    angle = view.upper().split("-")[-1]
    if angle not in ("CC", "MLO"):
        raise ModelError(f"DMV: unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    return angle


def _avg_pool(h: torch.Tensor) -> torch.Tensor:
    """Spatial mean ``(N, C, h, w) -> (N, C)`` over the flattened map (official ``AllViewsAvgPool``)."""
    return h.reshape(h.shape[0], h.shape[1], -1).mean(-1)


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise to the input in training mode only (official ``AllViewsGaussianNoise``)."""

    def __init__(self, std: float = TRAIN_NOISE_STD):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.std:
            return x
        return x + torch.randn_like(x) * self.std


class OutputLayer(nn.Module):
    """``fc_layer`` Linear, reshape to ``output_shape``, log-softmax over the last axis."""

    def __init__(self, in_features: int, output_shape: tuple[int, int]):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.fc_layer = nn.Linear(in_features, output_shape[0] * output_shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_layer(x).view(x.shape[0], *self.output_shape)
        return F.log_softmax(h, dim=-1)


class FourViewResNet(nn.Module):
    """Two ResNet-22 columns, ``cc`` and ``mlo``, also registered as ``l_cc``/``r_cc`` and
    ``l_mlo``/``r_mlo``.

    The aliases share tensors: ``parameters()`` counts each column once while ``state_dict()`` lists every
    column under three prefixes (cc, mlo, l_cc, l_mlo, r_cc, r_mlo), as the official checkpoints do.
    """

    def __init__(self, input_channels: int):
        super().__init__()
        self.cc = resnet22(input_channels)
        self.mlo = resnet22(input_channels)
        self.l_cc = self.cc
        self.l_mlo = self.mlo
        self.r_cc = self.cc
        self.r_mlo = self.mlo

    def column(self, view: str) -> ResNetV2:
        return self.cc if _view_angle(view) == "CC" else self.mlo

    def forward(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {view: self.column(view)(x[view]) for view in VIEWS}


def _check_views(model: str, x: Mapping[str, torch.Tensor], channels: int) -> None:
    if not isinstance(x, Mapping):
        raise ModelError(
            f"{model} expects a mapping from {', '.join(VIEWS)} to tensors, got {type(x).__name__}"
        )
    missing = [v for v in VIEWS if v not in x]
    if missing:
        raise ModelError(f"{model}: the input lacks the view(s) {', '.join(missing)}")
    sizes = set()
    for view in VIEWS:
        t = x[view]
        if t.ndim != 4 or t.shape[1] != channels:
            raise ModelError(f"{model}: view {view} must be (N, {channels}, H, W), got {tuple(t.shape)}")
        resnet22_output_size(t.shape[2], t.shape[3])
        sizes.add(t.shape[0])
    if len(sizes) != 1:
        raise ModelError(f"{model}: the four views have different batch sizes {sorted(sizes)}")


class SplitBreastModel(nn.Module):
    """DMV view-wise model: CC head on [L-CC, R-CC] features, MLO head on [L-MLO, R-MLO] features.

    Parameters
    ----------
    input_channels : int
        1 (image only, 6,132,592 parameters) or 3 (image + benign + malignant heatmaps, 6,135,728).
    """

    def __init__(self, input_channels: int = 1):
        super().__init__()
        self.input_channels = input_channels
        self.four_view_resnet = FourViewResNet(input_channels)
        self.fc1_cc = nn.Linear(512, 512)
        self.fc1_mlo = nn.Linear(512, 512)
        self.output_layer_cc = OutputLayer(512, (4, 2))
        self.output_layer_mlo = OutputLayer(512, (4, 2))
        self.all_views_gaussian_noise_layer = GaussianNoise()

    def forward(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        _check_views("DMV", x, self.input_channels)
        h = self.four_view_resnet({v: self.all_views_gaussian_noise_layer(x[v]) for v in VIEWS})
        h = {v: _avg_pool(t) for v, t in h.items()}
        h_cc = F.relu(self.fc1_cc(torch.cat([h["L-CC"], h["R-CC"]], dim=1)))
        h_mlo = F.relu(self.fc1_mlo(torch.cat([h["L-MLO"], h["R-MLO"]], dim=1)))
        return {"CC": self.output_layer_cc(h_cc), "MLO": self.output_layer_mlo(h_mlo)}


class ImageBreastModel(nn.Module):
    """DMV image-wise model: shared columns, one ``fc1_<v>`` + ``output_layer_<v>`` head per view.

    Output ``{view: (N, 4, 2)}`` log-probabilities; rows 0 and 1 are benign and malignant for that image.
    5,870,464 parameters with C=1.
    """

    _HEADS = ("lcc", "rcc", "lmlo", "rmlo")

    def __init__(self, input_channels: int = 1):
        super().__init__()
        self.input_channels = input_channels
        self.four_view_resnet = FourViewResNet(input_channels)
        for key in self._HEADS:
            setattr(self, f"fc1_{key}", nn.Linear(256, 256))
        for key in self._HEADS:
            setattr(self, f"output_layer_{key}", OutputLayer(256, (4, 2)))
        self.all_views_gaussian_noise_layer = GaussianNoise()

    def forward(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        _check_views("DMV image-wise", x, self.input_channels)
        h = self.four_view_resnet({v: self.all_views_gaussian_noise_layer(x[v]) for v in VIEWS})
        out = {}
        for view, key in zip(VIEWS, self._HEADS, strict=True):
            feat = F.relu(getattr(self, f"fc1_{key}")(_avg_pool(h[view])))
            out[view] = getattr(self, f"output_layer_{key}")(feat)
        return out


class SingleImageBreastModel(nn.Module):
    """DMV single-image model: one column ``view_resnet``, ``fc1`` and ``output_layer`` (2 x 2).

    ``(N, C, H, W) -> (N, 2, 2)`` log-probabilities, rows [benign, malignant], columns [negative, positive].
    Unlike the official forward (which slices the batch axis with ``[:2]``), every sample of a batch is
    returned. 2,866,356 parameters with C=1, 2,867,924 with C=3.
    """

    def __init__(self, input_channels: int = 1):
        super().__init__()
        self.input_channels = input_channels
        self.view_resnet = resnet22(input_channels)
        self.fc1 = nn.Linear(256, 256)
        self.output_layer = OutputLayer(256, (2, 2))
        self.all_views_gaussian_noise_layer = GaussianNoise()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ModelError(
                f"DMV single-image model expects (N, {self.input_channels}, H, W), got {tuple(x.shape)}"
            )
        resnet22_output_size(x.shape[2], x.shape[3])
        h = _avg_pool(self.view_resnet(self.all_views_gaussian_noise_layer(x)))
        return self.output_layer(F.relu(self.fc1(h)))

    @staticmethod
    def state_dict_from_image_wise(
        state_dict: Mapping[str, torch.Tensor], view: str
    ) -> dict[str, torch.Tensor]:
        """This model's state dict taken from an image-wise (``ImageBreastModel``) state dict.

        The column comes from ``four_view_resnet.cc.`` or ``four_view_resnet.mlo.`` (by the view angle), the
        head from ``fc1_<v>`` and the first 4 rows of ``output_layer_<v>.fc_layer`` (``v`` = e.g. ``lcc`` for
        L-CC).
        """
        angle = _view_angle(view).lower()
        key = view.lower().replace("-", "")
        if key not in ImageBreastModel._HEADS:
            raise ModelError(f"DMV: unknown view {view!r}; expected one of {', '.join(VIEWS)}")
        prefix = f"four_view_resnet.{angle}."
        out = {"view_resnet." + k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        try:
            out["fc1.weight"] = state_dict[f"fc1_{key}.weight"]
            out["fc1.bias"] = state_dict[f"fc1_{key}.bias"]
            out["output_layer.fc_layer.weight"] = state_dict[f"output_layer_{key}.fc_layer.weight"][:4]
            out["output_layer.fc_layer.bias"] = state_dict[f"output_layer_{key}.fc_layer.bias"][:4]
        except KeyError as exc:
            raise ModelError(f"DMV: the image-wise state dict lacks the key {exc.args[0]!r}") from None
        return out
