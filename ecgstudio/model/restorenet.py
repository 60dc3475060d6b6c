"""The restoration network: a small 1-D U-Net that estimates a whole 12-lead record from what a
page showed of it.

Input, per lead (``(batch, 48, samples)`` at :data:`FS`, :data:`LENGTH` samples = 10 s):

* what was read, in mV (0 where nothing was),
* where something was read (1/0),
* the exact-and-placed-beats completion of :func:`ecgstudio.restore.complete` (0 where it
  has nothing),
* where that completion has a value (1/0).

Output: the record, ``(batch, 12, samples)`` mV, as a correction added to the completion (or,
where it has nothing, to what was read): an untrained network returns its input.  The first
layer halves the rate and the last doubles it back, so most of the work runs at 250 Hz; a
bottleneck of dilated convolutions at 1/32 of the rate sees the whole 10 s at once, which is
what filling a lead from its own beats and from the other leads at the same moment needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .weights import NetCard, load_checked

#: Sampling rate and window the network works on.
FS = 500.0
LENGTH = 5000
#: Leads in, channels per lead in.
LEADS = 12
INPUTS_PER_LEAD = 4
_HINT = "train one with 'ecgstudio train-restorer'"


@dataclass(frozen=True)
class RestoreNetConfig:
    """Architecture: channels per level (each level halves the rate) and bottleneck dilations."""

    widths: tuple[int, ...] = (16, 24, 32, 48, 64)
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "dilations": list(self.dilations)}

    @classmethod
    def from_dict(cls, data: dict) -> RestoreNetConfig:
        return cls(tuple(int(w) for w in data["widths"]), tuple(int(d) for d in data["dilations"]))

    @property
    def multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return 2 ** len(self.widths)


def _block(c_in: int, c_out: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    k = 5 if dilation == 1 else 3
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, k, stride=stride, padding=dilation * (k // 2), dilation=dilation),
        nn.GroupNorm(4, c_out),
        nn.GELU(),
    )


class RestoreNet(nn.Module):
    """See the module docstring."""

    def __init__(self, config: RestoreNetConfig = RestoreNetConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.down = nn.ModuleList()
        c = LEADS * INPUTS_PER_LEAD
        for width in w:
            self.down.append(nn.Sequential(_block(c, width, stride=2), _block(width, width)))
            c = width
        self.middle = nn.Sequential(*(_block(c, c, dilation=d) for d in config.dilations))
        self.up = nn.ModuleList()
        for k in range(len(w) - 1, 0, -1):
            self.up.append(
                nn.ModuleDict(
                    {
                        "rise": nn.ConvTranspose1d(w[k], w[k - 1], 2, stride=2),
                        "mix": nn.Sequential(_block(2 * w[k - 1], w[k - 1]), _block(w[k - 1], w[k - 1])),
                    }
                )
            )
        self.out = nn.ConvTranspose1d(w[0], LEADS, 2, stride=2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        read, _, prior, prior_mask = x.view(x.shape[0], INPUTS_PER_LEAD, LEADS, -1).unbind(1)
        base = torch.where(prior_mask > 0, prior, read)
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.middle(h)
        for layer, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = layer["mix"](torch.cat([layer["rise"](h), skip], dim=1))
        return base + self.out(h)


def network_input(read: np.ndarray, prior: np.ndarray, *, multiple: int) -> np.ndarray:
    """The network's input ``(48, m)`` float32 from what was read and its completion, each
    ``(n, 12)`` mV with NaN where there is nothing (values clipped to +-10 mV); ``m`` is ``n``
    rounded up to a ``multiple``, the end padded as unknown."""
    n = len(read)
    m = -(-n // multiple) * multiple
    x = np.zeros((INPUTS_PER_LEAD * LEADS, m), np.float32)
    for k, a in enumerate((read, prior)):
        known = np.isfinite(a)
        x[2 * k * LEADS : (2 * k + 1) * LEADS, :n] = np.clip(np.where(known, a, 0.0), -10, 10).T
        x[(2 * k + 1) * LEADS : (2 * k + 2) * LEADS, :n] = known.T
    return x


@dataclass(frozen=True)
class RestorerCard(NetCard):
    """What a restoration weights file is: architecture, training and scores, sha256."""

    ARCHITECTURE = "RestoreNet"
    CONFIG = RestoreNetConfig
    INPUT: ClassVar[dict] = {
        "fs": FS,
        "samples": LENGTH,
        "leads": LEADS,
        "channels": "per lead: read mV, read mask, completion mV, completion mask",
    }

    net: RestoreNetConfig = field(default_factory=RestoreNetConfig)


def load_restorer(path: str | Path) -> tuple[RestoreNet, RestorerCard]:
    """Load restoration weights and card (sha256 checked, ``weights_only``), in eval mode on the CPU."""
    return load_checked(
        Path(path), RestorerCard.from_json, lambda card: RestoreNet(card.net), "restoration network", _HINT
    )
