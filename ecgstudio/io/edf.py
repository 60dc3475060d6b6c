"""EDF+ files of a digitized record, written and read through ``edfio``.

EDF has no missing value, and every signal of a file lasts as long as the file.  A page that
prints each lead for a quarter of the record (3x4) would show each lead as a flat line for the
other three quarters, which a viewer cannot tell from signal.  So ECG Studio writes a record as:

* **one EDF+C file per stretch**: leads read over the same span of the record (their first and
  last samples within :data:`STRETCH_TOLERANCE_S`) share a file that starts and ends with them,
  its start time the record's start plus the span's offset.  ``<stem>.edf`` holds the longest
  stretch (the rhythm strip, or all twelve leads of a 12x1 page), each other stretch
  ``<stem>_<t0>-<t1>s.edf`` (seconds with two decimals, e.g. ``rec_2.50-5.00s.edf``);
* samples missing inside a stretch are **bridged** linearly (held at its ends), and an EDF+
  annotation ``ECG Studio: <lead> not read`` covers them, so a viewer shows where they are;
* every file says where its stretch lies in the record and which leads the record has:
  ``ECG Studio: samples <a>-<b> of <n>; leads I,II,...``.  A lead never read is in no file.

:func:`read_edf_channels` reads one of these files and its sibling stretches back into one
record of ``n`` samples, NaN where no lead was read: the same signals as the WFDB and CSV files.
Other EDF and EDF+ files are read as they are; files of earlier ECG Studio versions, which
marked a missing sample with the digital minimum (:data:`LEGACY_GAP_NOTE`), are read too.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import edfio
import numpy as np

from ..arrays import true_runs
from ..errors import SignalFormatError
from ..results import Signals
from .atomic import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "LEGACY_GAP_NOTE",
    "STRETCH_TOLERANCE_S",
    "Channel",
    "read_edf_channels",
    "stretch_paths",
    "stretch_pattern",
    "write_edf",
]

#: Leads whose first and last samples lie this close (seconds) share a stretch (one file).
STRETCH_TOLERANCE_S = 0.2
#: Transducer text of signals written by earlier versions, whose digital minimum meant "no data".
LEGACY_GAP_NOTE = "digital minimum = no data (ECG Studio)"

_PREFIX = "ECG Studio: "
_RECORD_RE = re.compile(r"ECG Studio: samples (\d+)-(\d+) of (\d+); leads (.*)")
_GAP_RE = re.compile(r"ECG Studio: (.+) not read")
_STRETCH_STEM_RE = re.compile(r"(.+)_\d+\.\d\d-\d+\.\d\ds")
_DIGITAL_RANGE = (-32768, 32767)


@dataclass(frozen=True)
class Channel:
    """One signal read from an EDF file, in its own physical unit."""

    name: str
    unit: str
    fs: float
    values: np.ndarray


@dataclass(frozen=True)
class _Stretch:
    start: int  # first sample of the record in the file
    stop: int  # one past the last
    leads: tuple[int, ...]


# --------------------------------------------------------------------------------------------
# writing


def write_edf(
    signals: Signals,
    path: str | os.PathLike[str],
    *,
    patient: str = "X",
    recording: str = "ECG Studio",
    start: dt.datetime | None = None,
) -> list[Path]:
    """Write a record as EDF+C files, one per stretch of leads (see the module docstring).

    Each lead gets its own physical range from its data (the 8-character header fields rounded
    outward), so the quantisation step is ``(physical max - physical min) / 65535`` mV.  A
    stretch is cut into data records of whole samples, at most the smallest whole number of
    seconds holding a whole number of samples (1 s at 500 Hz, 2 s at 257.5 Hz); where no such
    record divides it, the last one is filled up with samples annotated as not read.

    Parameters
    ----------
    signals : Signals
        ``(n_samples, n_leads)`` mV, NaN where not read.
    path : str or path-like
        The main ``.edf`` file; other stretches go beside it.
    patient : str, optional
        Patient code for the EDF+ patient field (other subfields are written as ``X``).
    recording : str, optional
        Equipment name for the EDF+ recording field.
    start : datetime, optional
        Recording start; unknown by default (EDF+ then says ``Startdate X``, 01.01.85).

    Returns
    -------
    list of Path
        The files written, ``path`` first.

    Raises
    ------
    ValueError
        No samples, infinite values, no lead read at all, or an ``fs`` that is no ratio of
        small integers.
    """
    mv = signals.writable_mv()
    path = Path(path)
    record_spr = _record_samples(signals.fs)
    stretches = _stretches(mv, signals.fs)
    if not stretches:
        raise ValueError("no lead has a single sample read; there is nothing to write as EDF")
    leads_text = ",".join(signals.lead_names)
    written: list[Path] = []
    try:
        for k, stretch in enumerate(stretches):
            target = path if k == 0 else path.with_name(f"{path.stem}_{_span_name(stretch, signals.fs)}.edf")
            edf = _stretch_edf(mv, signals, stretch, record_spr, leads_text, patient, recording, start)
            with atomic_path(target) as tmp:
                edf.write(tmp)
            written.append(target)
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    for stale in set(stretch_paths(path)) - set(written):  # stretches of the record written before
        stale.unlink(missing_ok=True)
    return written


def stretch_pattern(stem_regex: str) -> str:
    """Regular expression of the names of the stretch files of records whose stem (the name
    of their main ``.edf`` file) matches ``stem_regex``."""
    return stem_regex + r"_\d+\.\d\d-\d+\.\d\ds\.edf"


def stretch_paths(path: str | os.PathLike[str]) -> list[Path]:
    """The sibling stretch files of a main ``.edf`` file that exist (not ``path`` itself)."""
    path = Path(path)
    pattern = re.compile(stretch_pattern(re.escape(path.stem)))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def _record_samples(fs: float) -> int:
    """Samples in the longest data record: the smallest whole number of seconds holding whole samples."""
    ratio = Fraction(fs).limit_denominator(1000)
    if ratio <= 0 or abs(float(ratio) - fs) > 1e-9 * fs:
        raise ValueError(
            f"fs = {fs!r} Hz is not a ratio of integers EDF can hold (samples per "
            "record / seconds per record); resample to a rate such as 500 Hz"
        )
    return ratio.numerator


def _stretches(mv: np.ndarray, fs: float) -> list[_Stretch]:
    """Leads grouped by the span they were read over, the longest span first."""
    tolerance = STRETCH_TOLERANCE_S * fs
    groups: list[list[tuple[int, int, int]]] = []
    read = np.isfinite(mv)
    spans = []
    for j in range(mv.shape[1]):
        idx = np.flatnonzero(read[:, j])
        if idx.size:
            spans.append((int(idx[0]), int(idx[-1]) + 1, j))
    for span in sorted(spans):
        for group in groups:
            if abs(group[0][0] - span[0]) <= tolerance and abs(group[0][1] - span[1]) <= tolerance:
                group.append(span)
                break
        else:
            groups.append([span])
    stretches = [_Stretch(min(s[0] for s in g), max(s[1] for s in g), tuple(sorted(s[2] for s in g))) for g in groups]
    return sorted(stretches, key=lambda s: (-(s.stop - s.start), s.start))


def _span_name(stretch: _Stretch, fs: float) -> str:
    return f"{stretch.start / fs:.2f}-{stretch.stop / fs:.2f}s"


def _data_record(n: int, record_spr: int, fs: float) -> tuple[int, float]:
    """(samples per data record, record duration s) for a stretch of ``n`` samples.

    Records are whole divisions of the longest one (at least a twentieth of it) lasting a
    binary fraction of a second (0.5 s, 0.25 s: their onsets, sums of durations, are exact in
    every reader); the one leaving the least filler at the end is taken, the longest of those.
    """
    rate = Fraction(fs).limit_denominator(1000)
    best: tuple[int, int] | None = None
    for spr in range(record_spr, 0, -1):
        if record_spr % spr or spr * 20 < record_spr:
            continue
        duration = Fraction(spr) / rate
        if duration.denominator & (duration.denominator - 1) or len(str(float(duration))) > 8:
            continue
        filler = -n % spr
        if best is None or filler < best[0]:
            best = (filler, spr)
    spr = record_spr if best is None else best[1]
    return spr, float(Fraction(spr) / rate)


def _stretch_edf(
    mv: np.ndarray,
    signals: Signals,
    stretch: _Stretch,
    record_spr: int,
    leads_text: str,
    patient: str,
    recording: str,
    start: dt.datetime | None,
) -> edfio.Edf:
    fs = signals.fs
    n = stretch.stop - stretch.start
    spr, duration = _data_record(n, record_spr, fs)
    n_file = -(-n // spr) * spr
    block = np.full((n_file, len(stretch.leads)), np.nan)
    block[:n] = mv[stretch.start : stretch.stop, list(stretch.leads)]
    where = f"{_PREFIX}samples {stretch.start}-{stretch.stop} of {len(mv)}; leads {leads_text}"
    annotations = [edfio.EdfAnnotation(0.0, None, where)]
    edf_signals = []
    for column, j in zip(block.T, stretch.leads, strict=True):
        name = signals.lead_names[j]
        missing = ~np.isfinite(column)
        for a, b in true_runs(missing):
            annotations.append(edfio.EdfAnnotation(a / fs, (b - a) / fs, f"{_PREFIX}{name} not read"))
        edf_signals.append(
            edfio.EdfSignal(
                _bridged(column, missing),
                fs,
                label=_edf_label(name),
                physical_dimension="mV",
                physical_range=_physical_range(column[~missing]),
                digital_range=_DIGITAL_RANGE,
            )
        )
    when = (start or dt.datetime(1985, 1, 1)) + dt.timedelta(seconds=stretch.start / fs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # edfio notes that a sub-second start needs EDF+C: it is EDF+C anyway
        return edfio.Edf(
            edf_signals,
            patient=edfio.Patient(code=_edf_token(patient)),
            recording=edfio.Recording(startdate=when.date() if start else None, equipment_code=_edf_token(recording)),
            starttime=when.time(),
            data_record_duration=duration,
            annotations=annotations,
        )


def _bridged(column: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``column`` with its missing samples drawn straight across (held at the ends)."""
    if not missing.any():
        return column
    idx = np.arange(len(column))
    return np.interp(idx, idx[~missing], column[~missing])


def _physical_range(values: np.ndarray) -> tuple[float, float]:
    """Physical min and max (<= 8 characters each) covering ``values`` (mV)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-3:  # flat: give it a 1 uV span
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 5e-4, mid + 5e-4
    return float(_edf_number(lo, up=False)), float(_edf_number(hi, up=True))


def _edf_number(x: float, *, up: bool) -> str:
    """``x`` rounded up (or down) to the most precise decimal text of at most 8 characters."""
    for decimals in range(7, -1, -1):
        scale = 10**decimals
        k = math.ceil(x * scale) if up else math.floor(x * scale)
        # x * scale may round the wrong way by an ulp; the next step out is then the answer.
        for kk in (k, k + 1) if up else (k, k - 1):
            text = f"{kk / scale:.{decimals}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            if text == "-0":
                text = "0"
            if len(text) <= 8 and ((float(text) >= x) if up else (float(text) <= x)):
                return text
    raise ValueError(f"{x} mV does not fit an 8-character EDF header field; such values are not ECG data")


def _edf_label(name: str) -> str:
    label = f"ECG {name}"
    if len(label) > 16:
        logger.warning("EDF label %r cut to 16 characters", label)
    return _printable(label[:16])


def _edf_token(text: str) -> str:
    """A header subfield: printable ASCII, spaces as ``_``, ``X`` when empty."""
    return _printable(text.strip().replace(" ", "_")) or "X"


def _printable(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "_" for c in text)


# --------------------------------------------------------------------------------------------
# reading


def read_edf_channels(path: str | os.PathLike[str]) -> list[Channel]:
    """Every ordinary signal of an EDF/EDF+ file in its physical unit; a record ECG Studio
    wrote in stretches comes back whole, from this file and its siblings, NaN where not read.

    Raises
    ------
    SignalFormatError
        The file is missing, not EDF, truncated or inconsistent.
    """
    path = Path(path)
    edf = _read(path)
    record = _record_note(edf)
    if record is None:
        return _plain_channels(edf, path)
    _, _, n, leads = record
    main = path
    named = _STRETCH_STEM_RE.fullmatch(path.stem)
    if named and (path.parent / f"{named.group(1)}.edf").is_file():
        main = path.parent / f"{named.group(1)}.edf"
    fs = None
    columns = {lead: np.full(n, np.nan) for lead in leads}
    for part in dict.fromkeys([main, *stretch_paths(main), path]):
        part_edf = edf if part == path else _read(part)
        note = _record_note(part_edf)
        if note is None or note[2] != n or note[3] != leads:
            logger.warning("%s is not part of the record in %s; left out", part.name, path.name)
            continue
        a, b = note[0], note[1]
        part_fs = _paste(part_edf, a, b, columns, part)
        if fs is not None and part_fs != fs:
            raise SignalFormatError(f"{part} is sampled at {part_fs} Hz, its record at {fs} Hz; export it again")
        fs = part_fs
    assert fs is not None  # the file itself is always pasted
    return [Channel(lead, "mV", fs, columns[lead]) for lead in leads]


def _read(path: Path) -> edfio.Edf:
    source = os.fspath(path)

    def bad(why: str) -> SignalFormatError:
        return SignalFormatError(f"{source!r} is not a readable EDF file: {why}; export it again as EDF/EDF+")

    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except FileNotFoundError as exc:
        raise SignalFormatError(f"EDF file {source!r} does not exist; check the path") from exc
    except OSError as exc:
        raise SignalFormatError(f"cannot read {source!r}: {exc.strerror or exc}") from exc
    if len(head) < 256:
        raise bad("the file is shorter than the 256-byte header")
    if head[:8] != b"0       ":
        raise bad("the version field is not '0' (BDF and other formats are not supported)")
    try:
        edf = edfio.read_edf(path)
        signals = edf.signals
        for signal in signals:
            if signal.sampling_frequency <= 0:
                raise ValueError(f"signal {signal.label!r} has no samples per data record")
        if not edf.is_continuous:
            logger.warning("%s is EDF+D (discontinuous); its records are read back to back", source)
    except SignalFormatError:
        raise
    except Exception as exc:  # edfio raises ValueError, IndexError, UnicodeDecodeError ... on broken files
        raise bad(str(exc) or type(exc).__name__) from exc
    return edf


def _record_note(edf: edfio.Edf) -> tuple[int, int, int, tuple[str, ...]] | None:
    for annotation in edf.annotations:
        match = _RECORD_RE.fullmatch(annotation.text)
        if match:
            a, b, n = (int(match.group(k)) for k in (1, 2, 3))
            if 0 <= a < b <= n:
                return a, b, n, tuple(match.group(4).split(","))
    return None


def _paste(edf: edfio.Edf, a: int, b: int, columns: dict[str, np.ndarray], path: Path) -> float:
    """Copy a stretch file's leads into the record's columns, NaN where annotated as not read."""
    fs = None
    names = {_edf_label(lead): lead for lead in columns}
    gaps = [(ann, _GAP_RE.fullmatch(ann.text)) for ann in edf.annotations]
    for signal in edf.signals:
        lead = names.get(signal.label)
        if lead is None:
            continue
        fs = float(signal.sampling_frequency)
        values = np.array(signal.data[: b - a], dtype=np.float64)
        for ann, match in gaps:
            if match and match.group(1) == lead:
                i = round(ann.onset * fs)
                values[i : i + round((ann.duration or 0.0) * fs)] = np.nan
        columns[lead][a : a + len(values)] = values
    if fs is None:
        raise SignalFormatError(f"{path} holds none of its record's leads; export it again")
    return fs


def _plain_channels(edf: edfio.Edf, path: Path) -> list[Channel]:
    """An EDF file as it is; the gap marks of earlier ECG Studio versions become NaN."""
    channels, legacy = [], []
    for signal in edf.signals:
        values = np.array(signal.data, dtype=np.float64)
        gaps = LEGACY_GAP_NOTE in signal.transducer_type
        if gaps:
            values[np.asarray(signal.digital) == signal.digital_range.min] = np.nan
        legacy.append(gaps)
        channels.append(Channel(signal.label, signal.physical_dimension, float(signal.sampling_frequency), values))
    if channels and all(legacy) and len({len(ch.values) for ch in channels}) == 1:
        read = ~np.isnan(np.column_stack([ch.values for ch in channels])).all(axis=1)
        end = int(np.flatnonzero(read)[-1]) + 1 if read.any() else 0
        channels = [Channel(ch.name, ch.unit, ch.fs, ch.values[:end]) for ch in channels]
    return channels
