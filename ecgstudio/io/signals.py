"""Reading reference signals (WFDB, CSV, EDF) into :class:`~ecgstudio.results.Signals` in mV.

Whatever the file calls its channels (``AVR``, ``MLII``, ``lead_II``, ``ECG V1``), they are
mapped onto the requested lead names, by default the twelve :data:`~ecgstudio.paper.LEAD_NAMES`
in their standard order.  Leads the file lacks become NaN columns; channels that are not
requested (Frank leads ``vx``/``vy``/``vz``, respiration, ...) are ignored.  Amplitudes are
converted to mV from whatever voltage unit the file states (V, mV, uV, nV).

EDF files ECG Studio wrote in stretches (:mod:`ecgstudio.io.edf`) are read back whole, the same
signals as the record's WFDB and CSV files.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import LayoutError, SignalFormatError
from ..paper import LEAD_NAMES, lead_index
from ..results import Signals
from .edf import Channel, read_edf_channels

logger = logging.getLogger(__name__)


#: Multipliers from voltage units (lower case, without spaces) to mV.
_MV_PER_UNIT: dict[str, float] = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "\u00b5v": 1e-3,
    "\u03bcv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
    "nv": 1e-6,
}
#: Other spellings of the standard leads; ``MLII``/``ML2`` and case are handled by ``lead_index``.
_LEAD_ALIASES: dict[str, str] = {
    "d1": "I",
    "di": "I",
    "d2": "II",
    "dii": "II",
    "d3": "III",
    "diii": "III",
    "mli": "I",
    "mliii": "III",
    "ml3": "III",
    "ml1": "I",
}
_TIME_NAMES = frozenset({"time", "t", "times", "timestamp", "sec", "secs", "seconds", "elapsed"})
_INDEX_NAMES = frozenset({"", "index", "sample", "samples", "sample_index", "n", "unnamed: 0"})
_NAN_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "?"})
_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})


def read_signals(
    path_or_record: str | os.PathLike[str] | object,
    *,
    leads: Sequence[str] | None = LEAD_NAMES,
    fs: float | None = None,
) -> Signals:
    """Read a WFDB record, CSV or EDF file into signals in mV.

    Parameters
    ----------
    path_or_record : str, path-like or wfdb.Record
        A WFDB record path with or without ``.hea`` (``.dat`` is accepted too), a CSV/TSV file,
        an EDF/EDF+ file, or an already loaded ``wfdb.Record``.
    leads : sequence of str or None, optional
        Lead names of the output columns, in order.  Matching is case-insensitive and knows the
        common spellings (``AVR``, ``MLII``, ``lead_II``, ``ECG V1``, ``-aVR`` read as negated
        aVR).  Leads the file lacks are NaN columns.  None keeps every voltage channel of the
        file, in file order.
    fs : float, optional
        Sampling frequency in Hz, needed for a CSV without a time column.  Where the file states
        its own rate this is only checked against it.

    Returns
    -------
    Signals
        ``mv`` of shape ``(n_samples, len(leads))``, float64, in mV, NaN where missing.

    Raises
    ------
    SignalFormatError
        The file is missing, unreadable or garbage, none of its channels is a requested lead, a
        requested lead is in a non-voltage unit, or ``fs`` disagrees with the file.
    """
    if fs is not None and not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"fs must be a positive number of Hz, got {fs}")
    if not isinstance(path_or_record, (str, os.PathLike)):
        if not _is_wfdb_record(path_or_record):
            raise TypeError(f"expected a path or a wfdb.Record, got {type(path_or_record).__name__}")
        channels = _channels_from_record(path_or_record, "the given wfdb.Record")
        return _assemble(channels, leads, fs, "the given wfdb.Record")
    path = Path(path_or_record)
    kind, target = _classify(path)
    if kind == "wfdb":
        channels = _read_wfdb_channels(target)
    elif kind == "csv":
        channels = _read_csv_channels(target, fs)
    else:
        channels = read_edf_channels(target)
    return _assemble(channels, leads, fs, os.fspath(path))


def read_edf(path: str | os.PathLike[str], *, leads: Sequence[str] | None = None) -> Signals:
    """Read an EDF or EDF+ file into signals in mV.

    A record ECG Studio wrote in stretches (:mod:`ecgstudio.io.edf`) comes back whole from any
    of its files, NaN where a lead was not read.  The ``EDF Annotations`` signal is skipped.

    Parameters
    ----------
    path : str or path-like
        The ``.edf`` file.
    leads : sequence of str or None, optional
        Output lead names as in :func:`read_signals`.  None (default) keeps every voltage
        signal, with ``ECG I``-style labels shortened to the lead name.

    Returns
    -------
    Signals
        float64 mV, shape ``(n_samples, n_leads)``.

    Raises
    ------
    SignalFormatError
        Not an EDF file, truncated, inconsistent header, or selected signals whose sampling
        rates differ.
    """
    return _assemble(read_edf_channels(path), leads, None, os.fspath(path))


def canonical_lead_name(name: str) -> tuple[str, float]:
    """The standard spelling of a channel name and the sign to apply to its samples.

    ``"AVR"`` gives ``("aVR", 1.0)``, ``"-aVR"`` gives ``("aVR", -1.0)``, ``"ECG lead_II"``
    gives ``("II", 1.0)``.  A name that is not a standard lead comes back stripped, sign 1.
    """
    text = name.strip()
    sign = 1.0
    if text.startswith("-"):
        sign, text = -1.0, text[1:].strip()
    core = re.sub(r"^(ecg|ekg)[\s_-]*", "", text, flags=re.IGNORECASE)
    core = re.sub(r"^lead[\s_-]*", "", core, flags=re.IGNORECASE).strip()
    core = _LEAD_ALIASES.get(core.lower(), core)
    try:
        return LEAD_NAMES[lead_index(core)], sign
    except LayoutError:
        return name.strip(), 1.0


# --------------------------------------------------------------------------------------------
# lead mapping


def _assemble(channels: list[Channel], leads: Sequence[str] | None, fs: float | None, source: str) -> Signals:
    """Map file channels onto the requested leads and convert them to mV."""
    if not channels:
        raise SignalFormatError(f"{source!r} holds no signals")
    if leads is None:
        chosen: list[tuple[str, Channel | None, float]] = []
        taken: set[str] = set()
        for ch in channels:
            if _mv_per(ch.unit) is None:
                logger.info("%s: skipping channel %r in unit %r (not a voltage)", source, ch.name, ch.unit)
                continue
            name, sign = canonical_lead_name(ch.name)
            if name.lower() in taken:
                logger.warning("%s: channel %r repeats lead %s; keeping the first", source, ch.name, name)
                continue
            taken.add(name.lower())
            chosen.append((name, ch, sign))
        if not chosen:
            raise SignalFormatError(f"{source!r} has no channel in a voltage unit (V, mV, uV)")
    else:
        if isinstance(leads, str):
            leads = (leads,)
        by_key: dict[str, tuple[Channel, float]] = {}
        for ch in channels:
            name, sign = canonical_lead_name(ch.name)
            key = name.lower()
            if key in by_key:
                logger.warning("%s: channel %r repeats lead %s; keeping the first", source, ch.name, name)
                continue
            by_key[key] = (ch, sign)
        chosen = []
        for requested in leads:
            name, _ = canonical_lead_name(requested)
            hit = by_key.get(name.lower())
            chosen.append((name, hit[0], hit[1]) if hit else (name, None, 1.0))
        if all(ch is None for _, ch, _ in chosen):
            raise SignalFormatError(
                f"none of the channels of {source!r} ({', '.join(ch.name for ch in channels)}) is one of the "
                f"requested leads ({', '.join(leads)}); pass leads= naming the channels you want"
            )
    present = [ch for _, ch, _ in chosen if ch is not None]
    rates = {ch.fs for ch in present}
    if len(rates) > 1:
        raise SignalFormatError(
            f"{source!r}: the selected channels have different sampling rates "
            f"({', '.join(f'{ch.name}: {ch.fs:g} Hz' for ch in present)}); select leads sharing one rate"
        )
    file_fs = rates.pop()
    if fs is not None and not math.isclose(fs, file_fs, rel_tol=1e-6):
        raise SignalFormatError(
            f"{source!r} is sampled at {file_fs:g} Hz but fs={fs:g} was given; drop fs= or check the file"
        )
    n = max(len(ch.values) for ch in present)
    mv = np.full((n, len(chosen)), np.nan)
    for j, (name, ch, sign) in enumerate(chosen):
        if ch is None:
            continue
        scale = _mv_per(ch.unit)
        if scale is None:
            raise SignalFormatError(
                f"{source!r}: channel {ch.name!r} (lead {name}) is in {ch.unit!r}, not a voltage unit; "
                "ECG leads must be in V, mV or uV"
            )
        mv[: len(ch.values), j] = ch.values * (scale * sign)
    return Signals(mv, float(file_fs), tuple(name for name, _, _ in chosen))


def _mv_per(unit: str) -> float | None:
    """mV per unit of ``unit``; an empty unit is taken as mV (the WFDB default)."""
    key = unit.strip().lower().replace(" ", "")
    return 1.0 if key == "" else _MV_PER_UNIT.get(key)


def _classify(path: Path) -> tuple[str, Path]:
    """("wfdb" | "csv" | "edf", the path to read: a record path without ``.hea`` for WFDB)."""
    suffix = path.suffix.lower()
    if suffix in (".hea", ".dat"):
        record = path.with_suffix("")
        if not (path.parent / (record.name + ".hea")).is_file():
            raise SignalFormatError(f"WFDB header {os.fspath(record) + '.hea'!r} does not exist; check the path")
        return "wfdb", record
    if path.is_dir():
        raise SignalFormatError(f"{os.fspath(path)!r} is a folder; pass a record or signal file")
    if (path.parent / (path.name + ".hea")).is_file():
        return "wfdb", path
    if not path.exists():
        raise SignalFormatError(f"signal file {os.fspath(path)!r} does not exist (nor {path.name}.hea); check the path")
    if suffix in _CSV_SUFFIXES:
        return "csv", path
    if suffix in (".edf", ".rec"):
        return "edf", path
    raise SignalFormatError(
        f"{os.fspath(path)!r} is not a known signal format; expected a WFDB record (.hea), CSV or EDF"
    )


# --------------------------------------------------------------------------------------------
# WFDB


def _is_wfdb_record(obj: object) -> bool:
    try:
        import wfdb
    except ImportError:  # pragma: no cover - wfdb is a dependency
        return False
    return isinstance(obj, wfdb.Record)


def _read_wfdb_channels(record: Path) -> list[Channel]:
    import wfdb

    try:
        rec = wfdb.rdrecord(os.fspath(record))
    # wfdb raises many exception types on bad headers and data; all mean "not a readable record".
    except Exception as exc:
        raise SignalFormatError(
            f"cannot read WFDB record {os.fspath(record)!r}: {exc}; check that the .hea and .dat files "
            "are complete and belong together"
        ) from exc
    return _channels_from_record(rec, os.fspath(record))


def _channels_from_record(rec: object, source: str) -> list[Channel]:
    p_signal = getattr(rec, "p_signal", None)
    if p_signal is None:
        raise SignalFormatError(
            f"WFDB record {source!r} has no physical signal (p_signal); read it with wfdb.rdrecord(..., physical=True)"
        )
    p_signal = np.asarray(p_signal, dtype=np.float64)
    if p_signal.ndim != 2:
        raise SignalFormatError(f"WFDB record {source!r} has signals of shape {p_signal.shape}, expected 2-D")
    names = list(rec.sig_name or [f"ch{k}" for k in range(p_signal.shape[1])])
    units = list(rec.units or [""] * p_signal.shape[1])
    fs = float(rec.fs)
    if not (math.isfinite(fs) and fs > 0):
        raise SignalFormatError(
            f"WFDB record {source!r} states a sampling frequency of {rec.fs}; fix the header's frequency field"
        )
    return [Channel(str(names[k]), str(units[k] or ""), fs, p_signal[:, k]) for k in range(p_signal.shape[1])]


# --------------------------------------------------------------------------------------------
# CSV


def _split_unit(header: str) -> tuple[str, str]:
    """``"II (uV)"`` or ``"II [uV]"`` or ``"II_uV"`` -> ``("II", "uV")``; no unit -> ``(name, "")``."""
    m = re.fullmatch(r"\s*(.*?)\s*[\(\[]\s*([^\)\]]*?)\s*[\)\]]\s*", header)
    if m:
        return m.group(1), m.group(2)
    m = re.fullmatch(r"\s*(.*?)_(s|ms|mv|uv|\u00b5v|v)\s*", header, flags=re.IGNORECASE)
    if m and m.group(1):
        return m.group(1), m.group(2)
    return header.strip(), ""


def _parse_table(
    rows: list[list[str]], header: list[str], line_numbers: list[int], source: str, decimal_comma: bool
) -> np.ndarray:
    """``(n_rows, n_cols)`` float64 from text cells; NaN for empty/``nan``/``NA`` cells."""
    cells = np.array(rows, dtype=str)
    if decimal_comma:
        cells = np.char.replace(cells, ",", ".")
    stripped = np.char.lower(np.char.strip(cells))
    missing = np.isin(stripped, list(_NAN_TEXT))
    try:
        return np.where(missing, "nan", stripped).astype(np.float64)
    except ValueError:
        pass
    # Slow path, only to say which cell is wrong.
    data = np.empty(cells.shape)
    for r in range(cells.shape[0]):
        for c in range(cells.shape[1]):
            data[r, c] = _parse_number(str(cells[r, c]), line_numbers[r], header[c], source)
    return data


def _parse_number(text: str, line: int, column: str, source: str) -> float:
    t = text.strip()
    if t.lower() in _NAN_TEXT:
        return math.nan
    try:
        return float(t)
    except ValueError:
        raise SignalFormatError(
            f"{source!r} line {line}, column {column!r}: {t[:40]!r} is not a number; "
            "the CSV must hold one header row then numbers only"
        ) from None


def _read_csv_channels(path: Path, fs: float | None) -> list[Channel]:
    source = os.fspath(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SignalFormatError(
            f"{source!r} is not a text CSV file ({exc.reason}); export the signals as CSV with a header row"
        ) from exc
    except OSError as exc:
        raise SignalFormatError(f"cannot read {source!r}: {exc.strerror or exc}") from exc
    lines = [(k + 1, ln) for k, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise SignalFormatError(f"{source!r} is empty; expected a header row and samples")
    head = lines[0][1]
    delimiter = max([",", ";", "\t"], key=head.count)
    if head.count(delimiter) == 0 and len(head.split()) > 1:
        delimiter = " "
    reader = csv.reader(io.StringIO("\n".join(ln for _, ln in lines)), delimiter=delimiter, skipinitialspace=True)
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    if all(_is_float(h) for h in header):
        raise SignalFormatError(f"{source!r} has no header row; add one naming the leads (e.g. time_s,I,II,...,V6)")
    if len(rows) < 2:
        raise SignalFormatError(f"{source!r} has a header but no samples")
    n_cols = len(header)
    for r, row in enumerate(rows[1:]):
        if len(row) != n_cols:
            raise SignalFormatError(
                f"{source!r} line {lines[r + 1][0]} has {len(row)} fields but the header "
                f"has {n_cols}; the file is truncated or not a CSV of signals"
            )
    # Spreadsheets that separate fields with ";" often write decimal commas.
    decimal_comma = delimiter == ";"
    data = _parse_table(rows[1:], header, [ln for ln, _ in lines[1:]], source, decimal_comma)

    time_col: int | None = None
    time_scale = 1.0
    channels: list[tuple[int, str, str]] = []
    for c, h in enumerate(header):
        name, unit = _split_unit(h)
        key = name.lower()
        if time_col is None and key in _TIME_NAMES:
            time_col = c
            time_scale = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3}.get(unit.lower(), math.nan)
            if math.isnan(time_scale):
                raise SignalFormatError(f"{source!r}: time column {h!r} has unit {unit!r}; use s or ms")
        elif key in _INDEX_NAMES:
            continue
        else:
            channels.append((c, name, unit))
    if not channels:
        raise SignalFormatError(f"{source!r} has no signal columns, only {header}")

    if time_col is not None:
        t = data[:, time_col] * time_scale
        file_fs = _fs_from_time(t, source)
        if fs is not None and not math.isclose(fs, file_fs, rel_tol=0.01):
            raise SignalFormatError(
                f"{source!r}: the time column says {file_fs:g} Hz but fs={fs:g} was "
                "given; drop fs= or fix the time column"
            )
        if fs is not None:
            file_fs = fs
    elif fs is None:
        raise SignalFormatError(f"{source!r} has no time column (time, t or time_s); pass fs= in Hz")
    else:
        file_fs = float(fs)
    return [Channel(name, unit, file_fs, data[:, c].copy()) for c, name, unit in channels]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fs_from_time(t: np.ndarray, source: str) -> float:
    """Sampling frequency in Hz from a uniformly spaced time column (s)."""
    if len(t) < 2:
        raise SignalFormatError(
            f"{source!r} has a single sample; the rate cannot be read from the time column, pass fs= instead"
        )
    if not np.all(np.isfinite(t)):
        raise SignalFormatError(f"{source!r}: the time column has empty or non-numeric cells; fill it in")
    span = t[-1] - t[0]
    if not span > 0:
        raise SignalFormatError(f"{source!r}: the time column does not increase; sort the rows by time")
    fs = (len(t) - 1) / span
    period = 1.0 / fs
    if np.max(np.abs(np.diff(t) - period)) > 0.25 * period:
        raise SignalFormatError(
            f"{source!r}: the time column is not evenly spaced (rows missing or out of "
            "order); resample to a fixed rate or pass a complete file"
        )
    # Undo the rounding of the printed time stamps: 257.50000003 Hz is 257.5 Hz.
    nice = round(fs, 3)
    return nice if abs(nice - fs) <= 1e-6 * fs else fs
