"""The lead-name reader: a small CNN that tells which lead name (if any) a word on the page is.

Input: one grey crop of :data:`CROP_H_MM` x :data:`CROP_W_MM` of paper at :data:`CROP_PX_PER_MM`
centred on a word, normalised by :func:`normalise_crops` and shaped ``(batch, 1, 32, 64)``.
Output: logits over :data:`NAME_CLASSES` (the twelve leads, ``-aVR`` of the Cabrera order, and
``other`` for any other word, mark or bit of trace).

It is trained from crops rendered on the fly by :func:`render_crop`: lead names and other words
in every font the machine has (TrueType and OpenCV's stroke fonts) at 2-5 mm, on paper with grids
of any strength, with bits of trace, separators and pulses beside them, then blurred, noised,
JPEG-compressed or binarised like a scan.  The crop keeps the page's physical scale, so a 5 mm
separator bar does not read as a 3 mm ``I``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.nn import functional as F

from ..paper import LEAD_NAMES
from ..resources import resource_path
from .weights import card_fields, card_json, fit, load_checked, save_model

#: What the reader tells apart: the twelve leads, the negated aVR of the Cabrera order, other.
NAME_CLASSES: tuple[str, ...] = (*LEAD_NAMES, "-aVR", "other")
OTHER = len(NAME_CLASSES) - 1

#: Physical size and resolution of a crop.
CROP_H_MM, CROP_W_MM, CROP_PX_PER_MM = 8.0, 16.0, 4.0


def crop_shape(crop_mm: tuple[float, float]) -> tuple[int, int]:
    """Pixels of a crop of ``(height, width)`` mm at :data:`CROP_PX_PER_MM`."""
    return round(crop_mm[0] * CROP_PX_PER_MM), round(crop_mm[1] * CROP_PX_PER_MM)


CROP_SHAPE = crop_shape((CROP_H_MM, CROP_W_MM))

#: The reader shipped with ECG Studio.
DEFAULT_READER = resource_path("models/leadnames.pt")

#: How each class may be printed (machines differ: ``MLII`` on Holter strips, ``AVR`` in capitals).
_SPELLINGS = {
    "I": ["I"],
    "II": ["II", "II", "MLII", "ML II"],
    "III": ["III"],
    "aVR": ["aVR", "aVR", "AVR", "avR"],
    "aVL": ["aVL", "aVL", "AVL", "avL"],
    "aVF": ["aVF", "aVF", "AVF", "avF"],
    **{f"V{k}": [f"V{k}"] for k in range(1, 7)},
    "-aVR": ["-aVR", "-aVR", "-AVR", "\u2013aVR"],
}
_OTHER_WORDS = [
    "V",
    "aV",
    "a",
    "L",
    "R",
    "F",
    "IV",
    "V7",
    "V8",
    "V0",
    "25mm/s",
    "10mm/mV",
    "mm/s",
    "Hz",
    "HR",
    "PR",
    "QT",
    "QRS",
    "ms",
    "bpm",
    "ID:",
    "Age",
    "Sex",
    "Male",
    "Name",
    "0.5",
    "150",
    "x1",
    "X",
    "Y",
    "Z",
    "Lead",
    "ECG",
    "P",
    "T",
    "1",
    "2",
    "5",
    "10",
    "25",
    "S",
    "M",
    "N",
]


@dataclass(frozen=True)
class NameReaderCard:
    """What a reader weights file is: classes, crop convention, training and scores, sha256."""

    version: str
    classes: tuple[str, ...] = NAME_CLASSES
    crop_mm: tuple[float, float] = (CROP_H_MM, CROP_W_MM)
    sha256: str = ""
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return card_json(
            self,
            "NameNet",
            classes=list(self.classes),
            input={
                "crop_mm": list(self.crop_mm),
                "px_per_mm": CROP_PX_PER_MM,
                "channels": "grey",
                "normalisation": "normalise_crops",
            },
        )

    @property
    def crop_shape(self) -> tuple[int, int]:
        return crop_shape(self.crop_mm)

    @classmethod
    def from_json(cls, text: str) -> NameReaderCard:
        data = json.loads(text)
        return cls(
            **card_fields(data),
            classes=tuple(data["classes"]),
            crop_mm=tuple(data.get("input", {}).get("crop_mm", (CROP_H_MM, CROP_W_MM))),
        )


class NameNet(nn.Module):
    """Three conv stages of two convolutions each (32x64 -> 4x8 for a name crop) and a linear
    layer that keeps where strokes are."""

    def __init__(self, n_classes: int = len(NAME_CLASSES), crop_shape: tuple[int, int] = CROP_SHAPE) -> None:
        super().__init__()
        widths = (16, 32, 64)
        layers: list[nn.Module] = []
        c_in = 1
        for c in widths:
            layers += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        h, w = crop_shape[0] // 8, crop_shape[1] // 8
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(c_in * h * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def normalise_crops(grey: np.ndarray) -> np.ndarray:
    """Ink darkness of grey crops ``(n, h, w)`` (uint8) as float32: 0 on paper, about 1 on the
    darkest ink (paper is each crop's 75th percentile, ink its 1st)."""
    g = grey.astype(np.float32)
    paper, ink = np.percentile(g.reshape(len(g), -1), [75, 1], axis=1)
    scale = np.maximum(40.0, paper - ink)
    return np.clip((paper[:, None, None] - g) / scale[:, None, None], -0.5, 1.5).astype(np.float32)


# --------------------------------------------------------------------------------------------
# training crops

_SUPER = 3  # crops are drawn at 3x and reduced, so strokes are antialiased like a scan


@functools.lru_cache(maxsize=1)
def _font_files() -> tuple[str, ...]:
    roots = [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        Path("C:/Windows/Fonts"),
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
    ]
    found = sorted(str(p) for root in roots if root.is_dir() for p in root.rglob("*.tt[fc]") if "Math" not in p.name)
    return tuple(found)


@functools.lru_cache(maxsize=256)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


_HERSHEY = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)


def _draw_word(canvas: np.ndarray, text: str, cx: float, cy: float, height_px: float, rng: np.random.Generator) -> None:
    """Draw ``text`` (ink = 255) centred at (cx, cy) with capitals about ``height_px`` tall."""
    fonts = _font_files()
    if rng.random() < 0.25:
        font = _HERSHEY[int(rng.integers(len(_HERSHEY)))]
        thick = max(1, round(height_px * rng.uniform(0.06, 0.16)))
        scale = cv2.getFontScaleFromHeight(font, max(3, round(height_px)), thick)
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        cv2.putText(canvas, text, (round(cx - tw / 2), round(cy + th / 2)), font, scale, 255, thick, cv2.LINE_AA)
        return
    path = fonts[int(rng.integers(len(fonts)))] if fonts and rng.random() < 0.85 else ""
    size = max(6, round(height_px / 0.73))
    font = _truetype(path, size)
    layer = Image.new("L", (canvas.shape[1], canvas.shape[0]), 0)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, fill=255, font=font)
    np.maximum(canvas, np.asarray(layer), out=canvas)


def _paper(h: int, w: int, px_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Grey paper with a minor/major grid of random strength (0 = none)."""
    paper = float(rng.uniform(170, 255))
    img = np.full((h, w), paper, np.float32)
    if rng.random() < 0.85:
        minor = float(rng.uniform(0, 0.35)) * paper
        major = min(paper - 10, minor * rng.uniform(1.0, 2.5) + rng.uniform(0, 40))
        for axis in (0, 1):
            n = (h, w)[axis]
            phase = rng.uniform(0, 5 * px_mm)
            pos = np.arange(n, dtype=np.float32)
            d_minor = np.abs(((pos - phase) / px_mm + 0.5) % 1.0 - 0.5) * px_mm
            d_major = np.abs(((pos - phase) / (5 * px_mm) + 0.5) % 1.0 - 0.5) * 5 * px_mm
            width = rng.uniform(0.4, 1.2) * _SUPER
            line = np.maximum(minor * (d_minor < width / 2), major * (d_major < width))
            img -= line[:, None] if axis == 0 else line[None, :]
    return np.clip(img, 0, 255)


def _clutter(ink: np.ndarray, px_mm: float, rng: np.random.Generator) -> None:
    """Bits of what sits near lead names: a trace above or below, a separator bar, a pulse."""
    h, w = ink.shape
    thick = max(1, round(rng.uniform(0.15, 0.5) * px_mm))
    if rng.random() < 0.7:  # a trace passing above or below the word
        y0 = h / 2 + rng.choice([-1, 1]) * rng.uniform(2.5, 5.5) * px_mm
        xs = np.arange(0, w, 2)
        ys = y0 + rng.normal(0, 0.15 * px_mm, xs.size).cumsum() * 0.3
        for _ in range(int(rng.integers(0, 3))):
            k = int(rng.integers(0, xs.size))
            ys[k : k + 3] -= rng.uniform(-1, 1) * rng.uniform(3, 12) * px_mm
        cv2.polylines(ink, [np.c_[xs, ys].astype(np.int32)], False, 255, thick, cv2.LINE_AA)
    if rng.random() < 0.3:  # a separator bar or a pulse edge
        x = rng.uniform(0, w)
        top = h / 2 + rng.uniform(-7, 2) * px_mm
        cv2.line(
            ink,
            (round(x), round(top)),
            (round(x), round(top + rng.uniform(4, 10) * px_mm)),
            255,
            max(thick, round(rng.uniform(0.3, 0.8) * px_mm)),
            cv2.LINE_AA,
        )


def render_crop(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One training crop (uint8 grey, :data:`CROP_SHAPE`) and its class index."""
    px_mm = CROP_PX_PER_MM * _SUPER
    h, w = CROP_SHAPE[0] * _SUPER, CROP_SHAPE[1] * _SUPER
    r = rng.random()
    ink = np.zeros((h, w), np.uint8)
    label = OTHER
    cx = w / 2 + rng.normal(0, 0.6) * px_mm
    cy = h / 2 + rng.normal(0, 0.4) * px_mm
    height = rng.uniform(1.8, 4.8) * px_mm
    if r < 0.72:
        label = int(rng.integers(OTHER))
        spellings = _SPELLINGS[NAME_CLASSES[label]]
        _draw_word(ink, spellings[int(rng.integers(len(spellings)))], cx, cy, height, rng)
    elif r < 0.92:
        _draw_word(ink, _OTHER_WORDS[int(rng.integers(len(_OTHER_WORDS)))], cx, cy, height, rng)
    if rng.random() < 0.6:
        _clutter(ink, px_mm, rng)
    if rng.random() < 0.2:  # condensed or widened printing
        f = rng.uniform(0.8, 1.2)
        ink = (
            cv2.resize(cv2.resize(ink, None, fx=f, fy=1.0), (w, h), interpolation=cv2.INTER_LINEAR)
            if f < 1
            else cv2.resize(ink, None, fx=f, fy=1.0)[:, :w]
        )
    angle = rng.normal(0, 1.5)
    ink = cv2.warpAffine(ink, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h))
    return _printed(ink, CROP_SHAPE, rng), label


def _printed(ink: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Ink (255 = full, drawn :data:`_SUPER` times finer) printed on paper with a grid, reduced
    to ``shape`` and scanned: blurred, noised, binarised or JPEG-compressed at random."""
    h, w = ink.shape
    img = _paper(h, w, CROP_PX_PER_MM * _SUPER, rng)
    img = img * (1 - rng.uniform(0.45, 1.0) * ink.astype(np.float32) / 255.0)
    img = cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
    img = img + rng.normal(0, rng.uniform(0, 12), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        img = np.where(img < rng.uniform(100, 180), 0, 255).astype(np.uint8)
    elif rng.random() < 0.3:
        _ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 80))])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return img


@dataclass(frozen=True)
class ReaderTask:
    """What a reader of printed words learns: its classes, its crop and the crops it is trained on."""

    name: str  # the weights' version prefix
    what: str  # in messages: "lead-name reader"
    classes: tuple[str, ...]
    crop_mm: tuple[float, float]
    render: Callable[[np.random.Generator], tuple[np.ndarray, int]]
    weights: Path  # the shipped reader
    hint: str  # how to get weights

    @property
    def crop_shape(self) -> tuple[int, int]:
        return crop_shape(self.crop_mm)


#: The lead-name reader's task.
NAMES = ReaderTask(
    "leadnames",
    "lead-name reader",
    NAME_CLASSES,
    (CROP_H_MM, CROP_W_MM),
    render_crop,
    DEFAULT_READER,
    "train one with 'ecgstudio train-names'",
)


def render_batch(n: int, rng: np.random.Generator, task: ReaderTask = NAMES) -> tuple[torch.Tensor, torch.Tensor]:
    crops, labels = zip(*(task.render(rng) for _ in range(n)))
    x = torch.from_numpy(normalise_crops(np.stack(crops)))[:, None]
    return x, torch.tensor(labels)


# --------------------------------------------------------------------------------------------
# training, saving, loading


def train_reader(
    out: str | Path,
    *,
    task: ReaderTask = NAMES,
    steps: int = 3000,
    batch: int = 96,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> NameReaderCard:
    """Train a reader from scratch on rendered crops and save it (weights + card) to ``out``.

    The card records the accuracy on 2000 held-out crops (another seed).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = NameNet(len(task.classes), task.crop_shape)
    training = fit(
        net,
        lambda: render_batch(batch, rng, task),
        lambda logits, y: F.cross_entropy(logits, y, label_smoothing=0.05),
        steps=steps,
        lr=lr,
        warmup_share=0.1,
        progress=progress,
    )
    accuracy = reader_accuracy(net, np.random.default_rng(seed + 10_000), n=2000, task=task)
    card = NameReaderCard(
        version=time.strftime(f"{task.name}-%Y%m%d-%H%M%S"),
        classes=task.classes,
        crop_mm=task.crop_mm,
        training={**training, "batch": batch, "seed": seed, "fonts": len(_font_files()) + len(_HERSHEY)},
        metrics={"held_out_crop_accuracy": round(accuracy, 4)},
    )
    return save_model(net, out, card)


@torch.no_grad()
def reader_accuracy(net: NameNet, rng: np.random.Generator, *, n: int = 2000, task: ReaderTask = NAMES) -> float:
    x, y = render_batch(n, rng, task)
    return float((net(x).argmax(1) == y).float().mean())


def load_reader(path: str | Path | None = None, task: ReaderTask = NAMES) -> tuple[NameNet, NameReaderCard]:
    """Load reader weights and card (sha256 checked, ``weights_only``), in eval mode on the CPU."""
    path = Path(path) if path else task.weights
    return load_checked(
        path, NameReaderCard.from_json, lambda card: NameNet(len(card.classes), card.crop_shape), task.what, task.hint
    )
