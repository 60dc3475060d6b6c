"""The paper-speed network: whether signals read at 25 mm/s were printed at 50 mm/s.

A page printed at 50 mm/s and read at 25 shows every wave twice as long: slow beats, wide QRS
complexes, T waves far from them, less high-frequency power.  Each cue alone is also a disease
or a blurred scan (bradycardia, bundle branch block, long QT, a 75 dpi fax); the network weighs
them together over every lead read, as a cardiologist glancing at the page would.

Input (``(batch, 24, samples)`` at :data:`FS`, a page's 10 s = 1250 samples): per lead the
reading in mV about its median (0 where nothing was read), then per lead where something was.
Output: the log-odds that the page was printed at twice the speed it was read at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..io.signals import canonical_lead_name
from ..metrics import resample_to_grid
from ..paper import LEAD_NAMES
from ..resources import resource_path
from ..results import Signals
from .weights import NetCard, load_checked

#: The rate the network reads at (Hz): QRS complexes stay several samples wide.
FS = 125.0
LEADS = 12
#: The shipped weights.
DEFAULT_SPEED_READER = resource_path("models/speed.pt")
_HINT = "train one with 'ecgstudio train-speed-reader'"


@dataclass(frozen=True)
class SpeedNetConfig:
    """Architecture: channels and dilation of each convolution (each but the last halves the rate)."""

    widths: tuple[int, ...] = (32, 48, 64, 64)
    dilations: tuple[int, ...] = (1, 1, 2, 4)

    def to_dict(self) -> dict:
        return {"widths": list(self.widths), "dilations": list(self.dilations)}

    @classmethod
    def from_dict(cls, data: dict) -> SpeedNetConfig:
        return cls(tuple(int(w) for w in data["widths"]), tuple(int(d) for d in data["dilations"]))


class SpeedNet(nn.Module):
    """Dilated 1-D convolutions, mean and max over time, one logit per page."""

    def __init__(self, config: SpeedNetConfig = SpeedNetConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 2 * LEADS
        for k, (width, dilation) in enumerate(zip(config.widths, config.dilations, strict=True)):
            if k:
                layers.append(nn.MaxPool1d(2))
            conv = nn.Conv1d(c_in, width, 7, padding=3 * dilation, dilation=dilation)
            layers += [conv, nn.BatchNorm1d(width), nn.ReLU()]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=1))[:, 0]


def network_input(mv: np.ndarray, fs: float) -> np.ndarray:
    """``(24, n)`` float32 at :data:`FS` from signals ``(samples, 12)`` mV at ``fs`` (NaN where
    not read): each lead about its median, then the masks."""
    x = resample_to_grid(np.asarray(mv, np.float64), fs, FS)
    known = np.isfinite(x)
    counts = known.sum(axis=0)
    median = np.array([np.median(c[k]) if n else 0.0 for c, k, n in zip(x.T, known.T, counts, strict=True)])
    values = np.clip(np.where(known, x - median, 0.0), -10, 10)
    return np.concatenate([values.T, known.T]).astype(np.float32)


def doubled_log_odds(net: SpeedNet, signals: Signals) -> float:
    """The network's log-odds that ``signals``, read at 25 mm/s, were printed at 50 mm/s (leads
    by any spelling, ``-aVR`` negated back; of a lead given twice, the column read longest;
    leads it does not know left out)."""
    mv = np.full((signals.n_samples, LEADS), np.nan)
    longest = np.zeros(LEADS)
    for column, name in zip(np.asarray(signals.mv, np.float64).T, signals.lead_names, strict=True):
        lead, sign = canonical_lead_name(name)
        if lead not in LEAD_NAMES:
            continue
        k, read = LEAD_NAMES.index(lead), np.isfinite(column).sum()
        if read > longest[k]:
            mv[:, k], longest[k] = sign * column, read
    with torch.no_grad():
        return float(net(torch.from_numpy(network_input(mv, signals.fs)[None]))[0])


@dataclass(frozen=True)
class SpeedReaderCard(NetCard):
    """What a paper-speed weights file is: architecture, training and scores, sha256."""

    ARCHITECTURE = "SpeedNet"
    CONFIG = SpeedNetConfig
    INPUT: ClassVar[dict] = {
        "fs": FS,
        "leads": LEADS,
        "channels": "per lead: mV about its median; then per lead: read mask",
    }

    net: SpeedNetConfig = field(default_factory=SpeedNetConfig)


def load_speed_reader(path: str | Path | None = None) -> tuple[SpeedNet, SpeedReaderCard]:
    """Load paper-speed weights and card (sha256 checked, ``weights_only``), in eval mode on the CPU."""
    path = Path(path) if path is not None else DEFAULT_SPEED_READER
    return load_checked(path, SpeedReaderCard.from_json, lambda card: SpeedNet(card.net), "paper-speed network", _HINT)
