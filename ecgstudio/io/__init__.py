"""Reading pages and signals, writing signals: images, WFDB, CSV, EDF+ and JSON sidecars.

All writers are atomic (see :mod:`ecgstudio.io.atomic`).
"""

from .atomic import atomic_path, write_bytes_atomic, write_text_atomic
from .images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PDF_DPI,
    MIN_SIDE_PX,
    SUPPORTED_SUFFIXES,
    Page,
    collect_inputs,
    file_sha256,
    iter_pages,
    page_stem,
    read_image,
    read_pages,
)
from .signals import canonical_lead_name, read_edf, read_signals
from .writers import FORMATS, write_csv, write_edf, write_json_sidecar, write_signals, write_wfdb

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PDF_DPI",
    "FORMATS",
    "MIN_SIDE_PX",
    "SUPPORTED_SUFFIXES",
    "Page",
    "atomic_path",
    "canonical_lead_name",
    "collect_inputs",
    "file_sha256",
    "iter_pages",
    "page_stem",
    "read_edf",
    "read_image",
    "read_pages",
    "read_signals",
    "write_bytes_atomic",
    "write_csv",
    "write_edf",
    "write_json_sidecar",
    "write_signals",
    "write_text_atomic",
    "write_wfdb",
]
