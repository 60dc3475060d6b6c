"""Writing signals as WFDB, CSV and EDF+, and a JSON sidecar with calibration and provenance.

Every writer is atomic: the data go to a temporary file (or folder) beside the target and are
renamed into place only once complete, so a crash never leaves a half-written file behind.

Missing samples (NaN) survive every format:

=======  ======================================================================================
WFDB     format 16 at 1000 adu/mV (1 uV steps); NaN is WFDB's invalid-sample value -32768,
         which ``wfdb.rdrecord`` returns as NaN.
CSV      an empty field.
EDF+     one file per stretch of leads read together, gaps inside a stretch bridged and
         annotated (:mod:`ecgstudio.io.edf`); :func:`~ecgstudio.io.signals.read_edf` returns
         NaN there and outside each stretch.
=======  ======================================================================================
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..paper import Layout
from ..results import Calibration, Signals
from .atomic import atomic_path, fsync_folder, write_text_atomic
from .edf import write_edf
from .images import file_sha256

logger = logging.getLogger(__name__)

#: Format names :func:`write_signals` accepts, with the suffix each writes.
FORMATS: dict[str, str] = {"wfdb": ".hea", "csv": ".csv", "edf": ".edf", "json": ".json"}

_WFDB_GAIN_ADU_PER_MV = 1000.0  # 1 uV per step
_WFDB_MAX_ADU = 32767  # -32768 is WFDB's invalid-sample value for format 16
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
_SIDECAR_KEYS = frozenset({"calibration", "layout", "provenance", "completion"})


def write_wfdb(
    signals: Signals, out_dir: str | os.PathLike[str], record_name: str, *, comments: Iterable[str] = ()
) -> Path:
    """Write a WFDB record (``<record_name>.hea`` and ``.dat``) in mV.

    Samples are stored in format 16 at 1000 adu/mV (1 uV resolution, range +-32.767 mV); a lead
    exceeding that range is stored at a lower gain, with a warning.  NaN samples are stored as
    WFDB's invalid value and read back as NaN.  Both files are written into a temporary folder
    inside ``out_dir`` and then moved into place, the header last.

    Parameters
    ----------
    signals : Signals
        ``(n_samples, n_leads)`` mV; lead names become the WFDB signal names.
    out_dir : str or path-like
        Folder for the two files (created if missing).
    record_name : str
        Letters, digits, ``_`` and ``-`` only (a WFDB rule).
    comments : iterable of str, optional
        Header comment lines (without ``#``).

    Returns
    -------
    Path
        The ``.hea`` file.

    Raises
    ------
    ValueError
        Bad record or lead name, no samples, or infinite values.
    """
    import wfdb

    if not _NAME_RE.fullmatch(record_name):
        raise ValueError(f"WFDB record name {record_name!r} may hold only letters, digits, '_' and '-'; rename it")
    mv = signals.writable_mv()
    for name in signals.lead_names:
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"WFDB signal names cannot be empty or hold spaces: {name!r}")
    gains = []
    for j, name in enumerate(signals.lead_names):
        peak = float(np.nanmax(np.abs(mv[:, j]))) if np.isfinite(mv[:, j]).any() else 0.0
        gain = _WFDB_GAIN_ADU_PER_MV
        if peak * gain > _WFDB_MAX_ADU - 0.5:
            gain = math.floor((_WFDB_MAX_ADU - 1) / peak * 1000.0) / 1000.0
            logger.warning(
                "lead %s peaks at %.1f mV, beyond +-32.767 mV; stored at %g adu/mV (%.3g uV steps)",
                name,
                peak,
                gain,
                1000.0 / gain,
            )
        gains.append(gain)
    lines = [" ".join(str(c).split()) for c in comments]  # one header line each

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{record_name}.", suffix=".tmp", dir=out_dir))
    try:
        wfdb.wrsamp(
            record_name,
            fs=float(signals.fs),
            units=["mV"] * mv.shape[1],
            sig_name=list(signals.lead_names),
            p_signal=mv,
            fmt=["16"] * mv.shape[1],
            adc_gain=gains,
            baseline=[0] * mv.shape[1],
            comments=lines or None,
            write_dir=os.fspath(tmp_dir),
        )
        targets = []
        for suffix in (".dat", ".hea"):  # header last: a .hea always has its .dat
            tmp_file = tmp_dir / f"{record_name}{suffix}"
            with open(tmp_file, "rb+") as fh:
                os.fsync(fh.fileno())
            target = out_dir / f"{record_name}{suffix}"
            os.replace(tmp_file, target)
            targets.append(target)
        fsync_folder(out_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.debug("wrote WFDB record %s", targets[1])
    return targets[1]


def write_csv(
    signals: Signals, path: str | os.PathLike[str], *, sources: tuple[np.ndarray, Sequence[str]] | None = None
) -> Path:
    """Write a CSV: a ``time_s`` column, then one column per lead in mV.

    Voltages have 4 decimals (0.1 uV; the round trip is exact to 0.05 uV), times 10 significant
    digits.  NaN is an empty field.  Comma-separated, ``\\n`` line ends, one header row.

    Parameters
    ----------
    sources : (ndarray, names), optional
        Where each sample came from (:mod:`ecgstudio.restore`): an ``(n_samples, n_leads)``
        array of indices into ``names``; adds a ``<lead>_source`` column per lead after the leads.

    Returns
    -------
    Path
        ``path``.
    """
    mv = signals.writable_mv()
    path = Path(path)
    row_format = ",".join(["%.10g"] + ["%.4f"] * mv.shape[1])
    rows = np.column_stack([signals.time_s(), mv]).tolist()
    # "%.4f" prints NaN as "nan"; no number prints those letters, so they can go wholesale.
    lines = [(row_format % tuple(row)).replace("nan", "") for row in rows]
    header = ["time_s", *signals.lead_names]
    if sources is not None:
        codes, names = sources
        words = np.asarray(names, dtype=object)[np.asarray(codes)]
        lines = [f"{line},{','.join(w)}" for line, w in zip(lines, words, strict=True)]
        header += [f"{lead}_source" for lead in signals.lead_names]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(header)
        fh.write("\n".join(lines))
        fh.write("\n")
    return path


def write_json_sidecar(
    path: str | os.PathLike[str],
    *,
    calibration: Calibration | Mapping[str, Any] | None = None,
    layout: str | Layout | None = None,
    provenance: Mapping[str, Any] | None = None,
    signals: Signals | None = None,
    completion: Mapping[str, Any] | None = None,
) -> Path:
    """Write a pretty JSON file describing where signals came from and how they were scaled.

    Parameters
    ----------
    path : str or path-like
        Output ``.json`` file.
    calibration : Calibration or mapping, optional
        Written with all its fields (``px_per_mm_x``, ``px_per_mm_y``, ``mm_per_s``,
        ``mm_per_mv``) so that ``Calibration(**d)`` restores it.
    layout : str or Layout, optional
        The layout name.
    provenance : mapping, optional
        Free-form facts; recognised keys are ``source_image`` (path), ``source_sha256`` (computed
        from ``source_image`` when missing and the file exists) and ``model_version``.  The
        software name and version (:data:`ecgstudio.__version__`) and the UTC time are added.
    signals : Signals, optional
        Adds ``fs_hz``, ``n_samples``, ``duration_s``, ``units`` and ``lead_names``.
    completion : mapping, optional
        Where the samples of a completed record came from (:mod:`ecgstudio.restore`): per lead,
        ``[source, start s, end s]`` runs.

    Returns
    -------
    Path
        ``path``.
    """
    prov: dict[str, Any] = {
        "software": "ecgstudio",
        "software_version": __version__,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    prov.update(dict(provenance or {}))
    source = prov.get("source_image")
    if source is not None:
        prov["source_image"] = display_path(source)
        if not prov.get("source_sha256") and Path(source).is_file():
            prov["source_sha256"] = file_sha256(source)
    if isinstance(calibration, Calibration):
        calibration = dataclasses.asdict(calibration)
    doc: dict[str, Any] = {
        "calibration": dict(calibration) if calibration is not None else None,
        "layout": layout.name if isinstance(layout, Layout) else layout,
        "provenance": prov,
    }
    if completion is not None:
        doc["completion"] = dict(completion)
    if signals is not None:
        doc["signals"] = {
            "fs_hz": float(signals.fs),
            "n_samples": int(signals.n_samples),
            "duration_s": float(signals.duration_s),
            "units": "mV",
            "lead_names": list(signals.lead_names),
        }
    text = json.dumps(_jsonable(doc), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    path = Path(path)
    write_text_atomic(path, text)
    return path


def write_signals(
    signals: Signals,
    out_dir: str | os.PathLike[str],
    stem: str,
    *,
    formats: str | Sequence[str] = ("wfdb",),
    sidecar: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    sources: tuple[np.ndarray, Sequence[str]] | None = None,
) -> list[Path]:
    """Write signals in several formats under one stem; if one cannot be written, none stays.

    Parameters
    ----------
    signals : Signals
        The signals, mV.
    out_dir : str or path-like
        Output folder (created if missing).
    stem : str
        File stem, e.g. :attr:`ecgstudio.io.images.Page.stem`.  Characters WFDB does not allow
        in record names (anything but letters, digits, ``_`` and ``-``) become ``_`` in every
        format, so all files of one page share one name.
    formats : str or sequence of str, optional
        Any of ``"wfdb"``, ``"csv"``, ``"edf"``, ``"json"`` (case-insensitive).
    sidecar : mapping, optional
        Keyword arguments of :func:`write_json_sidecar` (``calibration``, ``layout``,
        ``provenance``).  Giving it writes the JSON sidecar even if ``"json"`` is not listed.
    provenance : mapping, optional
        Where the signals came from (``source_image``, ``source_sha256``), for the WFDB header's
        source line when no sidecar is given.
    sources : (ndarray, names), optional
        Where each sample came from, for the CSV's ``<lead>_source`` columns (:func:`write_csv`).

    Returns
    -------
    list of Path
        The files written, in format order (WFDB gives ``.hea`` then ``.dat``).

    Raises
    ------
    ValueError
        An unknown format name, a bad sidecar key or an unusable stem.
    """
    if isinstance(formats, str):
        formats = (formats,)
    wanted = list(dict.fromkeys(f.lower() for f in formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown output format(s) {', '.join(map(repr, unknown))}; choose from {', '.join(FORMATS)}")
    if sidecar is not None:
        bad = set(sidecar) - _SIDECAR_KEYS
        if bad:
            raise ValueError(f"unknown sidecar key(s) {sorted(bad)}; use {sorted(_SIDECAR_KEYS)}")
        if "json" not in wanted:
            wanted.append("json")
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    if not safe.strip("_"):
        raise ValueError(f"output stem {stem!r} has no usable characters; name the output explicitly")
    if safe != stem:
        logger.info("output stem %r written as %r", stem, safe)
    out_dir = Path(out_dir)
    prov = provenance or (sidecar or {}).get("provenance") or {}
    written: list[Path] = []
    try:
        for fmt in wanted:
            if fmt == "wfdb":
                hea = write_wfdb(signals, out_dir, safe, comments=_wfdb_comments(prov))
                written += [hea, hea.with_suffix(".dat")]
            elif fmt == "csv":
                written.append(write_csv(signals, out_dir / f"{safe}.csv", sources=sources))
            elif fmt == "edf":
                written += write_edf(signals, out_dir / f"{safe}.edf")
            else:
                written.append(write_json_sidecar(out_dir / f"{safe}.json", signals=signals, **dict(sidecar or {})))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as text any file or terminal takes: bytes a file name holds that are not UTF-8
    (a name from another system) are written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _wfdb_comments(provenance: Mapping[str, Any]) -> list[str]:
    """WFDB header comments: the software, and the source image's name and sha256 where known."""
    comments = [f"ECG Studio {__version__}"]
    source = provenance.get("source_image")
    if source:
        digest = provenance.get("source_sha256")
        comments.append(f"source: {display_path(Path(source).name)}" + (f" sha256:{digest}" if digest else ""))
    return comments


# --------------------------------------------------------------------------------------------
# internals


def _jsonable(obj: Any) -> Any:
    """``obj`` with paths, numpy values and dataclasses made JSON-ready; NaN/inf become None."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    return str(obj)
