"""The printed-settings reader: tells whether a line of text, from a given word on, says the
paper speed or the gain ("25 mm/s", "10mm/mV", "50 mm/sec", ...), and which.

Most carts print their settings on the page ("25mm/s 10mm/mV 40Hz", "Speed: 25 mm/sec  Limb:
10 mm/mV"); a page without a calibration pulse, or printed at 50 mm/s, says so only there.
The reader is a :class:`~ecgstudio.model.namenet.NameNet` on a wider crop
(:data:`SETTINGS.crop_mm`: 8 x 32 mm at 4 px/mm) whose left edge sits just before a word: it
says which setting the text *starting at that word* gives, and ``other`` for any other word,
for a crop starting inside a word (the ``5 mm/s`` of ``25 mm/s``), or for a unit without its
number.

It is trained from lines rendered on the fly (:func:`render_settings_crop`): settings in the
spellings carts use, among header words, numbers with other units and lead names, in every
font the machine has, on paper with grids of any strength, then blurred, noised,
JPEG-compressed or binarised like the lead-name reader's crops.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ..resources import resource_path
from .namenet import _OTHER_WORDS, _SUPER, CROP_PX_PER_MM, ReaderTask, _font_files, _printed, _truetype, crop_shape

#: What the reader tells apart: the standard speeds and gains a page prints, and anything else.
SETTING_CLASSES: tuple[str, ...] = ("25 mm/s", "50 mm/s", "5 mm/mV", "10 mm/mV", "20 mm/mV", "other")
SETTING_OTHER = len(SETTING_CLASSES) - 1
#: Each class's value: (what, number) with what "speed" (mm/s) or "gain" (mm/mV).
SETTING_VALUES: tuple[tuple[str, float], ...] = (
    ("speed", 25.0),
    ("speed", 50.0),
    ("gain", 5.0),
    ("gain", 10.0),
    ("gain", 20.0),
)
SETTINGS_CROP_MM = (8.0, 32.0)
#: Paper left of the word a crop starts at, mm (the reader is trained on 0.3-1.1 mm).
LEFT_MARGIN_MM = 0.7

_SPEED_UNITS = ["mm/s", "mm/s", "mm/s", "mm/sec", "mm/S", "MM/S", "mm/s."]
_GAIN_UNITS = ["mm/mV", "mm/mV", "mm/mV", "mm/mv", "MM/MV", "mm/MV"]
_PREFIXES = ["Speed:", "Gain:", "Limb:", "Chest:", "Sens:", "Paper", "Amp:", "Filter:", "Speed", "Gain"]
_UNITS_OTHER = ["Hz", "ms", "BPM", "bpm", "s", "sec", "mV", "mm", "cm/s", "deg", "kg", "cm", "%", "Hz~"]
_WORDS = [w for w in _OTHER_WORDS if w not in ("25mm/s", "10mm/mV", "mm/s")] + [
    "Vent.",
    "rate",
    "PR",
    "int",
    "QRS",
    "dur",
    "QT/QTc",
    "P-R-T",
    "axes",
    "Sinus",
    "rhythm",
    "Normal",
    "ECG",
    "Abnormal",
    "Female",
    "yrs",
    "Unconfirmed",
    "Report",
    "Ward",
    "Room",
    "12SL",
    "MAC",
    "CID:",
    "EID:",
    "0.05-150",
    "0.5-40",
    "F",
    "W",
    "~",
    "I",
    "II",
    "aVR",
    "V1",
]


def _setting_tokens(label: int, rng: np.random.Generator) -> list[str]:
    """The tokens of one printed setting of class ``label`` ("25", "mm/s" or "25mm/s", ...)."""
    what, value = SETTING_VALUES[label]
    number = f"{value:g}" if rng.random() < 0.85 else f"{value:.1f}"
    unit = str(rng.choice(_SPEED_UNITS if what == "speed" else _GAIN_UNITS))
    return [number + unit] if rng.random() < 0.5 else [number, unit]


def _other_tokens(rng: np.random.Generator) -> list[str]:
    """A phrase that gives no setting: words, numbers with other units, odd speeds and gains,
    a unit without its number."""
    r = rng.random()
    if r < 0.35:
        return [str(rng.choice(_WORDS))]
    if r < 0.65:
        number = str(rng.choice([rng.integers(0, 1000), round(float(rng.uniform(0, 200)), 1), 25, 50, 10, 5, 20, 150]))
        unit = str(rng.choice(_UNITS_OTHER))
        return [number + unit] if rng.random() < 0.4 else [number, unit]
    if r < 0.75:  # speeds and gains the reader does not name
        number = str(rng.choice(["12.5", "2.5", "100", "40", "1", "2", "15", "30"]))
        return [number, str(rng.choice(_SPEED_UNITS + _GAIN_UNITS))]
    if r < 0.85:
        return [str(rng.choice(_SPEED_UNITS + _GAIN_UNITS))]
    if r < 0.93:
        return [str(rng.choice(_PREFIXES))]
    return [f"{rng.integers(1, 29):02d}-{rng.integers(1, 13):02d}-{rng.integers(1995, 2026)}"]


def render_settings_crop(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """One training crop (uint8 grey, 8 x 32 mm at 4 px/mm) and its class index.

    A line of phrases is drawn with one font; the crop starts a little before a word of it:
    the start of a setting (its class), or the start of any other word or a letter inside a
    word (``other``).
    """
    px_mm = CROP_PX_PER_MM * _SUPER
    h, w = (v * _SUPER for v in crop_shape(SETTINGS_CROP_MM))
    cap_mm = rng.uniform(1.6, 4.2)
    fonts = _font_files()
    path = fonts[int(rng.integers(len(fonts)))] if fonts and rng.random() < 0.9 else ""
    font = _truetype(path, max(6, round(cap_mm * px_mm / 0.72)))
    space = font.getlength(" ") * rng.uniform(0.7, 1.6)
    # a line: phrases before the anchor, the anchor's phrase, phrases after
    want_setting = rng.random() < 0.5
    label = int(rng.integers(SETTING_OTHER)) if want_setting else SETTING_OTHER

    def phrase(setting_share: float) -> list[str]:
        if rng.random() < setting_share:
            return _setting_tokens(int(rng.integers(SETTING_OTHER)), rng)
        return _other_tokens(rng)

    before = [phrase(0.3) for _ in range(2)]
    # a crop starting inside a setting is never that setting: "5 mm/s" of "25 mm/s"
    inside = not want_setting and rng.random() < 0.4
    anchor = _setting_tokens(label, rng) if want_setting else phrase(0.5) if inside else _other_tokens(rng)
    after = [phrase(0.4) for _ in range(3)]
    phrases = [*before, anchor, *after]
    layer = Image.new("L", (w * 3, h), 0)
    draw = ImageDraw.Draw(layer)
    baseline = h / 2 + cap_mm * px_mm / 2 + rng.normal(0, 0.3) * px_mm
    x, letters = 0.0, []  # letters: where each letter of the anchor's phrase starts
    for k, tokens in enumerate(phrases):
        for token in tokens:
            if k == len(before):
                letters += [x + font.getlength(token[:c]) for c in range(len(token))]
            draw.text((x, baseline), token, fill=255, font=font, anchor="ls")
            x += font.getlength(token) + space
        x += space * rng.uniform(0.0, 3.0)
    # the phrase's start, or (inside) a later letter of it
    anchor_x = letters[int(rng.integers(1, len(letters)))] if inside and len(letters) > 1 else letters[0]
    left = anchor_x - rng.uniform(0.3, 1.1) * px_mm
    ink = cv2.warpAffine(np.asarray(layer, np.float32), np.float32([[1, 0, -left], [0, 1, 0]]), (w, h))
    ink = cv2.warpAffine(ink, cv2.getRotationMatrix2D((px_mm, h / 2), rng.normal(0, 1.0), 1.0), (w, h))
    return _printed(ink, crop_shape(SETTINGS_CROP_MM), rng), label


#: The printed-settings reader's task.
SETTINGS = ReaderTask(
    "settings",
    "printed-settings reader",
    SETTING_CLASSES,
    SETTINGS_CROP_MM,
    render_settings_crop,
    resource_path("models/settings.pt"),
    "train one with 'ecgstudio train-names --settings'",
)
