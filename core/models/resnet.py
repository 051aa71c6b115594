"""Convolutional trunks shared by DMV and GMIC (spec sections 1.2, 2.3 and 2.5).

* :class:`ResNetV2` with :class:`BasicBlockV2`: the pre-activation ("v2") ResNet-22 column of DMV (first
  convolution padding 0) and of GMIC's global network ``ds_net`` (first convolution padding 3).
  16 filters doubling over 5 stages of 2 blocks; every stage's first block has a 1x1 convolution shortcut
  without batch norm (stage 0 included); a final batch norm + ReLU. 2,799,536 parameters with 1 input channel.
* :class:`ResNetV1` with :class:`BasicBlockV1`: the torchvision-style ResNet-18 body (no average pool, no
  fully connected layer) of GMIC's local network ``dn_resnet``. 11,176,512 parameters with 3 input channels.

Attribute names equal the official state-dict names, so checkpoints load without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.models import ModelError


class BasicBlockV2(nn.Module):
    """Pre-activation basic block: ``conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut``.

    The shortcut is ``downsample(relu(bn1(x)))`` when the block has a downsample, else the raw input ``x``.
    No activation follows the addition.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.downsample = downsample
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        residual = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + residual


class ResNetV2(nn.Module):
    """Pre-activation ResNet column (``first_conv``, ``first_pool``, ``layer_list``, ``final_bn``).

    Parameters
    ----------
    input_channels : int
        Channels of the input (1 for images; 3 for DMV image + two heatmaps).
    num_filters : int
        Filters of the first convolution and stage 0; multiplied by ``growth_factor`` per stage.
    first_layer_kernel_size, first_layer_conv_stride, first_layer_padding : int
        The first convolution (no bias, and no batch norm or ReLU after it).
    first_pool_size, first_pool_stride, first_pool_padding : int
        The max pool after it.
    blocks_per_layer : sequence of int
        Basic blocks per stage.
    block_strides : sequence of int
        Stride of each stage's first block.
    growth_factor : int
        Channel multiplier between stages.

    Forward: ``(N, input_channels, H, W)`` -> ``(N, 256, h, w)`` after the final batch norm and ReLU.
    """

    def __init__(
        self,
        input_channels: int,
        num_filters: int = 16,
        first_layer_kernel_size: int = 7,
        first_layer_conv_stride: int = 2,
        first_layer_padding: int = 0,
        first_pool_size: int = 3,
        first_pool_stride: int = 2,
        first_pool_padding: int = 0,
        blocks_per_layer: Sequence[int] = (2, 2, 2, 2, 2),
        block_strides: Sequence[int] = (1, 2, 2, 2, 2),
        growth_factor: int = 2,
    ):
        super().__init__()
        self.first_conv = nn.Conv2d(
            input_channels,
            num_filters,
            first_layer_kernel_size,
            stride=first_layer_conv_stride,
            padding=first_layer_padding,
            bias=False,
        )
        self.first_pool = nn.MaxPool2d(first_pool_size, stride=first_pool_stride, padding=first_pool_padding)
        layers = []
        inplanes = num_filters
        planes = num_filters
        for i, (num_blocks, stride) in enumerate(zip(blocks_per_layer, block_strides, strict=True)):
            if i > 0:
                planes = planes * growth_factor
            downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False))
            blocks = [BasicBlockV2(inplanes, planes, stride, downsample)]
            blocks += [BasicBlockV2(planes, planes) for _ in range(1, num_blocks)]
            layers.append(nn.Sequential(*blocks))
            inplanes = planes
        self.layer_list = nn.ModuleList(layers)
        self.final_bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.out_channels = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first_pool(self.first_conv(x))
        for layer in self.layer_list:
            h = layer(h)
        return self.relu(self.final_bn(h))


def resnet22(input_channels: int = 1, first_layer_padding: int = 0) -> ResNetV2:
    """The ResNet-22 column: padding 0 for DMV (``resnet22()``), 3 for GMIC's ``ds_net``."""
    return ResNetV2(input_channels, first_layer_padding=first_layer_padding)


def resnet22_output_size(height: int, width: int, first_layer_padding: int = 0) -> tuple[int, int]:
    """Spatial size ``(h, w)`` of a ResNet-22 column's output for an ``height x width`` input (pixels).

    conv 7x7/2: ``floor((x + 2p - 7) / 2) + 1``; max pool 3x3/2: ``floor((x - 3) / 2) + 1``; then four
    stride-2 stages: ``ceil(x / 2)`` each. Raises ``ValueError`` when the input is too small to give at least
    1x1.
    """

    def one(side: int) -> int:
        x = (side + 2 * first_layer_padding - 7) // 2 + 1
        x = (x - 3) // 2 + 1
        if x < 1:
            raise ModelError(f"an input of {height}x{width} px is too small for the ResNet-22 column")
        for _ in range(4):
            x = -(-x // 2)
        return x

    return one(height), one(width)


class BasicBlockV1(nn.Module):
    """Post-activation basic block (torchvision ResNet-18): ``relu(bn2(conv2(relu(bn1(conv1(x))))) +
    sc(x))``."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNetV1(nn.Module):
    """Torchvision-style ResNet body without average pool and classifier (GMIC's ``dn_resnet``).

    Parameters
    ----------
    initial_filters : int
        Channels of ``conv1`` and ``layer1``; doubled per later stage.
    layers : sequence of int
        Blocks per stage (``(2, 2, 2, 2)`` for ResNet-18).
    input_channels : int
        Channels of the input.

    Forward: ``(N, input_channels, H, W)`` -> ``(N, 8 * initial_filters, H/32, W/32)`` (rounded up per stage).
    """

    def __init__(
        self, initial_filters: int = 64, layers: Sequence[int] = (2, 2, 2, 2), input_channels: int = 3
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, initial_filters, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(initial_filters)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = initial_filters
        for i, num_blocks in enumerate(layers):
            planes = initial_filters * 2**i
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )
            blocks = [BasicBlockV1(inplanes, planes, stride, downsample)]
            blocks += [BasicBlockV1(planes, planes) for _ in range(1, num_blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        self.num_layers = len(layers)
        self.out_channels = inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_layers):
            h = getattr(self, f"layer{i + 1}")(h)
        return h


def resnet18_body(input_channels: int = 3) -> ResNetV1:
    """GMIC's local network trunk: ResNet-18 body, 64 initial filters, 3 input channels."""
    return ResNetV1(64, (2, 2, 2, 2), input_channels)
