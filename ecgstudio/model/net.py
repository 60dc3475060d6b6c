"""The trace segmentation network: a compact U-Net predicting where trace ink runs.

Input: an RGB page resampled to :data:`CANONICAL_PX_PER_MM`, normalised to [0, 1] and shaped
``(batch, 3, H, W)``.  Output: logits ``(batch, 2, H, W)``: channel 0 is the heat map of the
trace centre lines (signal ink only), channel 1 is non-signal ink (text, lead names, pulses,
separators, handwriting) so the extractor can tell the two apart.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Pages are resampled to this grid scale before segmentation (about 150 dpi).
CANONICAL_PX_PER_MM = 6.0
#: Scales (relative to the canonical one) of the pages the network is trained on.
TRAINED_SCALES = (0.85, 1.2)
OUTPUT_CHANNELS = ("trace", "text")


#: Bounds on a model card's architecture (the shipped net has 5 levels of at most 96 channels).
MAX_DEPTH = 8
MAX_WIDTH = 1024


@dataclass(frozen=True)
class NetConfig:
    """Architecture arguments (stored in the model card)."""

    widths: tuple[int, ...] = (8, 16, 32, 64, 96)
    in_channels: int = 3
    out_channels: int = len(OUTPUT_CHANNELS)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        """The architecture a model card names; ValueError where its sizes are beyond what a
        TraceNet can be (a card is data from a file: it must not make the loader allocate gigabytes)."""
        widths = tuple(int(w) for w in data["widths"])
        config = cls(widths=widths, in_channels=int(data["in_channels"]), out_channels=int(data["out_channels"]))
        if not (1 <= len(widths) <= MAX_DEPTH and all(1 <= w <= MAX_WIDTH for w in widths)):
            raise ValueError(f"widths {list(widths)} are not 1 to {MAX_DEPTH} levels of 1 to {MAX_WIDTH} channels")
        if not (1 <= config.in_channels <= 4 and 1 <= config.out_channels <= 16):
            raise ValueError(f"{config.in_channels} input and {config.out_channels} output channels are not a TraceNet")
        return config

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (len(self.widths) - 1)


class _Block(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class TraceNet(nn.Module):
    """U-Net with a wide horizontal receptive field (traces run left to right)."""

    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.down = nn.ModuleList([_Block(config.in_channels, w[0])] + [_Block(a, b) for a, b in zip(w[:-1], w[1:])])
        # A 1x9 then 9x1 mixing at the bottleneck gives context along the trace direction.
        self.context = nn.Sequential(
            nn.Conv2d(w[-1], w[-1], (1, 9), padding=(0, 4), bias=False),
            nn.BatchNorm2d(w[-1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(w[-1], w[-1], (9, 1), padding=(4, 0), bias=False),
            nn.BatchNorm2d(w[-1]),
            nn.ReLU(inplace=True),
        )
        self.up = nn.ModuleList([_Block(b + a, a) for a, b in zip(w[:-1], w[1:])])
        self.head = nn.Conv2d(w[0], config.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.down):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = self.context(skips.pop()) + x
        for block in reversed(self.up):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


_M = TypeVar("_M", bound=nn.Module)


def fused_for_inference(model: _M) -> _M:
    """A copy of ``model`` in eval mode with every BatchNorm folded into the convolution before it.

    Same outputs (to float rounding), fewer operations per pixel.
    """
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                    module[i + 1] = nn.Identity()
    return fused


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
