"""GMIC-ResNet-18, the Globally-Aware Multiple Instance Classifier (spec section 2).

Pipeline for one standardised, right-facing image ``x`` of shape ``(N, 1, H, W)``:

1. global network ``ds_net`` (ResNet-22, first convolution padding 3) -> ``h_g`` ``(N, 256, h, w)``;
   1x1 convolution + sigmoid -> ``saliency_map`` ``(N, 2, h, w)`` (benign, malignant); ``y_global`` = mean of
   the top ``percent_t`` saliency cells per class.
2. ROI retrieval (:func:`retrieve_roi`): K windows greedily on the summed, per-class min-max normalised map;
   mapped to input pixels (:func:`map_to_input`) and cut out (:func:`extract_patches`).
3. local network ``dn_resnet`` (ResNet-18 body) on each patch broadcast to 3 channels -> spatial mean
   ``h_crops``.
4. gated attention over the K patches -> ``z``, ``patch_attns``, ``y_local``.
5. fusion: ``y_fusion = sigmoid(fusion_dnn([max over space of h_g, z]))`` -- the prediction.

The saliency-map size is read from the global network's output, so any input of at least about 256 x 256 px
works; the official code needs ``cam_size`` set by hand for each input size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.models import ModelError
from core.models.resnet import resnet18_body, resnet22, resnet22_output_size

OFFICIAL_INPUT_SIZE = (2944, 1920)
OFFICIAL_CROP_SHAPE = (256, 256)
OFFICIAL_K = 6
# percent_t of the five released models (sample_model_1.p ... sample_model_5.p); it only changes y_global.
PERCENT_T_BY_MODEL = {1: 0.02, 2: 0.03, 3: 0.03, 4: 0.05, 5: 0.1}


class _PostProcessing(nn.Module):
    """Holds ``gn_conv_last`` (1x1 convolution 256 -> classes, no bias), as in the official key names."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.gn_conv_last = nn.Conv2d(in_channels, num_classes, 1, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.gn_conv_last(h)


def crop_shape_on_map(crop_shape: tuple[int, int], cam_size: tuple[int, int], input_size: tuple[int, int]):
    """Window size on the saliency map: ``(round(crop_h * h / H), round(crop_w * w / W))``, half to even.

    Parameters
    ----------
    crop_shape : (int, int)
        Patch size in input pixels (official 256 x 256).
    cam_size : (int, int)
        Saliency map size ``(h, w)`` in cells.
    input_size : (int, int)
        Input size ``(H, W)`` in pixels.

    Raises
    ------
    ModelError
        The window would be 0 cells (crop under half a cell) or larger than the map (input too small).
    """
    (ch, cw), (h, w), (H, W) = crop_shape, cam_size, input_size
    window = int(np.round(ch * h / H)), int(np.round(cw * w / W))
    if min(window) < 1:
        raise ModelError(
            f"GMIC: crop_shape {ch}x{cw} px is less than half a saliency-map cell "
            f"({H / h:.0f}x{W / w:.0f} px) for a {H}x{W} input; use a larger crop_shape"
        )
    if window[0] > h or window[1] > w:
        raise ModelError(
            f"GMIC: a {ch}x{cw} px crop needs {window[0]}x{window[1]} saliency cells but the {H}x{W} input "
            f"gives only {h}x{w}; the input is too small for the crop shape"
        )
    return window


def retrieve_roi(saliency_map: torch.Tensor, window: tuple[int, int], k: int) -> np.ndarray:
    """Greedy selection of ``k`` windows on the saliency map (official ``RetrieveROIModule``).

    Each class map is min-max normalised to [0, 1] per sample, the classes are summed, then ``k`` times:
    average pool with the window (stride 1, no padding), take the first maximum in row-major order, record
    its upper-left cell and multiply the map by a mask that is 0 inside that window. Later windows may
    overlap earlier ones.

    Parameters
    ----------
    saliency_map : torch.Tensor
        ``(N, C, h, w)`` saliency values (any real values; official: sigmoid outputs in [0, 1]).
    window : (int, int)
        Window size in cells, each between 1 and the map size.
    k : int
        Number of windows.

    Returns
    -------
    numpy.ndarray
        ``(N, k, 2)`` int64 upper-left (row, column) in map cells, in selection order.
    """
    n, c, h, w = saliency_map.shape
    wh, ww = window
    if not (1 <= wh <= h and 1 <= ww <= w):
        raise ModelError(
            f"GMIC: ROI window {wh}x{ww} cells does not fit the {h}x{w} saliency map; the input is too small "
            "for the crop shape (use a larger input or a smaller crop_shape)"
        )
    flat = saliency_map.detach().reshape(n, c, -1)
    max_vals = flat.max(dim=2, keepdim=True)[0].unsqueeze(-1)
    min_vals = flat.min(dim=2, keepdim=True)[0].unsqueeze(-1)
    current = (saliency_map.detach() - min_vals) / (max_vals - min_vals)
    current = current.sum(dim=1, keepdim=True)
    rows = torch.arange(h, device=current.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=current.device).view(1, 1, 1, w)
    positions = []
    for _ in range(k):
        pooled = F.avg_pool2d(current, (wh, ww), stride=1)
        w_map = pooled.shape[-1]
        idx = pooled.reshape(n, 1, -1).max(dim=2)[1]  # (N, 1): first maximum
        r = (idx // w_map).view(n, 1, 1, 1)
        q = (idx % w_map).view(n, 1, 1, 1)
        positions.append(torch.cat([r.view(n, 1, 1), q.view(n, 1, 1)], dim=2))
        inside = (rows >= r) & (rows < r + wh) & (cols >= q) & (cols < q + ww)
        current = current * (1 - inside.to(current.dtype))
    return torch.cat(positions, dim=1).cpu().numpy().astype(np.int64)


def map_to_input(positions: np.ndarray, cam_size: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """Map cell positions to input pixels: ``around(r / h * H)``, ``around(c / w * W)`` (half to even,
    float64).

    Returns an int64 array of the same shape ``(N, K, 2)``.
    """
    (h, w), (H, W) = cam_size, input_size
    rows = np.around(positions[..., 0] / h * H)
    cols = np.around(positions[..., 1] / w * W)
    return np.stack([rows, cols], axis=-1).astype(np.int64)


def extract_patches(x: torch.Tensor, locations: torch.Tensor, crop_shape: tuple[int, int]) -> torch.Tensor:
    """Cut ``crop_shape`` patches of channel 0 at upper-left ``locations`` (official ``crop_pytorch``).

    Each patch is filled with the minimum of its whole input image, then the part of
    ``[row, row + ch) x [col, col + cw)`` inside the image is written aligned to the bottom-right corner of
    the patch. For windows inside the image this is an exact copy.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` input; only channel 0 is used.
    locations : torch.Tensor
        ``(N, K, 2)`` int64 upper-left (row, column) in pixels, each in ``[0, H) x [0, W)``.
    crop_shape : (int, int)
        Patch size ``(ch, cw)`` in pixels.

    Returns
    -------
    torch.Tensor
        ``(N, K, ch, cw)`` patches, same dtype and device as ``x``.
    """
    n, _, H, W = x.shape
    ch, cw = crop_shape
    img = x[:, 0]
    loc = locations.to(device=x.device, dtype=torch.int64)
    r0, c0 = loc[..., 0:1], loc[..., 1:2]  # (N, K, 1)
    # Patch row i holds image row min(r0 + ch, H) - ch + i when that row is >= r0; else the image minimum.
    src_r = torch.minimum(r0 + ch, torch.tensor(H, device=x.device)) - ch + torch.arange(ch, device=x.device)
    src_c = torch.minimum(c0 + cw, torch.tensor(W, device=x.device)) - cw + torch.arange(cw, device=x.device)
    valid = (src_r >= r0).unsqueeze(-1) & (src_c >= c0).unsqueeze(-2)  # (N, K, ch, cw)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    gathered = img[batch, src_r.clamp(0, H - 1).unsqueeze(-1), src_c.clamp(0, W - 1).unsqueeze(-2)]
    fill = img.reshape(n, -1).min(dim=1)[0].view(n, 1, 1, 1)
    return torch.where(valid, gathered, fill)


class GMIC(nn.Module):
    """GMIC-ResNet-18 with the official state-dict layout (258 keys, 14,110,322 parameters).

    Parameters
    ----------
    crop_shape : (int, int)
        ROI patch size in input pixels; official (256, 256).
    K : int
        Number of ROI patches per image; official 6.
    percent_t : float
        Fraction of saliency cells averaged into ``y_global`` (in (0, 1]); official model 1: 0.02. It does not
        change ``y_fusion``.
    post_processing_dim : int
        Channels of the global network output (256).
    num_classes : int
        Output classes (2: benign, malignant).

    Forward
    -------
    ``x`` ``(N, 1, H, W)`` float32, standardised (spec 0.7), right-facing. Returns a dict:

    * ``y_fusion`` ``(N, 2)`` probabilities [benign, malignant] -- the prediction;
    * ``y_global`` ``(N, 2)`` and ``y_local`` ``(N, 2)`` -- training-time outputs;
    * ``saliency_map`` ``(N, 2, h, w)`` in [0, 1];
    * ``patch_locations`` ``(N, K, 2)`` int64 upper-left (row, column) of the patches in input pixels;
    * ``patch_attns`` ``(N, K)`` attention weights summing to 1;
    * ``patches`` ``(N, K, ch, cw)`` the ROI patches fed to the local network.
    """

    def __init__(
        self,
        crop_shape: tuple[int, int] = OFFICIAL_CROP_SHAPE,
        K: int = OFFICIAL_K,
        percent_t: float = 0.02,
        post_processing_dim: int = 256,
        num_classes: int = 2,
    ):
        super().__init__()
        if len(crop_shape) != 2 or min(crop_shape) < 1 or K < 1 or not 0 < percent_t <= 1:
            raise ModelError(f"GMIC: bad configuration crop_shape={crop_shape}, K={K}, percent_t={percent_t}")
        self.crop_shape = (int(crop_shape[0]), int(crop_shape[1]))
        self.K = int(K)
        self.percent_t = float(percent_t)
        self.num_classes = num_classes
        # Registration order = official state-dict order.
        self.ds_net = resnet22(1, first_layer_padding=3)
        self.left_postprocess_net = _PostProcessing(post_processing_dim, num_classes)
        self.dn_resnet = resnet18_body(3)
        self.mil_attn_V = nn.Linear(512, 128, bias=False)
        self.mil_attn_U = nn.Linear(512, 128, bias=False)
        self.mil_attn_w = nn.Linear(128, 1, bias=False)
        self.classifier_linear = nn.Linear(512, num_classes, bias=False)
        self.fusion_dnn = nn.Linear(post_processing_dim + 512, num_classes)

    def top_t_count(self, cam_size: tuple[int, int]) -> int:
        """Saliency cells averaged per class for ``y_global``: ``round(h * w * percent_t)``, at least 1.

        (The official code takes 0 cells -- and returns NaN -- on maps so small that this rounds to 0.)
        """
        return max(1, int(round(cam_size[0] * cam_size[1] * self.percent_t)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 1:
            raise ModelError(f"GMIC expects an (N, 1, H, W) tensor, got shape {tuple(x.shape)}")
        n, _, H, W = x.shape
        resnet22_output_size(H, W, first_layer_padding=3)  # a clear error for inputs too small
        return self.forward_from_global(x, self.ds_net(x))

    def forward_from_global(self, x: torch.Tensor, h_g: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything after the global network: saliency map, top-t pooling, ROI patches cut from ``x``,
        local network, attention and fusion. ``h_g`` is ``self.ds_net(x)``, ``(N, 256, h, w)``; training
        on cached global features calls this directly."""
        n, _, H, W = x.shape
        saliency_map = torch.sigmoid(self.left_postprocess_net(h_g))
        cam_size = (saliency_map.shape[2], saliency_map.shape[3])

        top = saliency_map.reshape(n, self.num_classes, -1).topk(self.top_t_count(cam_size), dim=2)[0]
        y_global = top.mean(dim=2)

        window = crop_shape_on_map(self.crop_shape, cam_size, (H, W))
        cells = retrieve_roi(saliency_map, window, self.K)
        locations = torch.from_numpy(map_to_input(cells, cam_size, (H, W))).to(x.device)
        patches = extract_patches(x, locations, self.crop_shape)

        ch, cw = self.crop_shape
        crops = patches.reshape(n * self.K, 1, ch, cw).expand(-1, 3, -1, -1)
        h_crops = self.dn_resnet(crops).mean(dim=2).mean(dim=2).view(n, self.K, -1)

        flat = h_crops.reshape(n * self.K, -1)
        gate = torch.sigmoid(self.mil_attn_U(flat)) * torch.tanh(self.mil_attn_V(flat))
        attn = F.softmax(self.mil_attn_w(gate).view(n, self.K), dim=1)
        z = torch.sum(attn.unsqueeze(-1) * h_crops, 1)
        y_local = torch.sigmoid(self.classifier_linear(z))

        global_vec = torch.max(torch.max(h_g, dim=2)[0], dim=2)[0]
        y_fusion = torch.sigmoid(self.fusion_dnn(torch.cat([global_vec, z], dim=1)))
        return {
            "y_fusion": y_fusion,
            "y_global": y_global,
            "y_local": y_local,
            "saliency_map": saliency_map,
            "patch_locations": locations,
            "patch_attns": attn,
            "patches": patches,
        }
