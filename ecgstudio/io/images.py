"""Reading ECG pages from scans, photos and PDFs as RGB arrays.

Every reader returns ``(H, W, 3)`` ``uint8`` RGB arrays, whatever the file held: 16-bit and
grey PNGs are scaled to 8 bits, palettes are expanded, transparency is composited on white,
JPEG/TIFF EXIF orientation is applied (a phone photo comes out the way it was shot), and every
page of a multi-page TIFF or PDF is a :class:`Page` of its own.

The format is recognised from the file's content, not its suffix.  Anything that cannot be
read raises :class:`~ecgstudio.errors.UnreadableImageError`; a page too small to hold an ECG
or too large to decode safely raises :class:`~ecgstudio.errors.ImageSizeError`.

Pillow keeps its own decompression-bomb limit in a module global; these readers never change
it.  They apply their own ``max_pixels`` limit before decoding and turn Pillow's warning and
error into :class:`~ecgstudio.errors.ImageSizeError`, so neither escapes to the caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageSizeError, UnreadableImageError

logger = logging.getLogger(__name__)

#: File suffixes (lower case) that :func:`collect_inputs` picks up from folders.
SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pdf"})

#: Pillow format names accepted for raster files (camera JPEGs Pillow treats as MPO open as JPEG).
_PIL_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF")

#: Smallest accepted page side in pixels: a 100 px strip cannot hold a legible ECG.
MIN_SIDE_PX = 100

#: The one image size limit (pixels per page), checked from the file's header before decoding:
#: 80 megapixels, an A4 page at 900 dpi.  A 50 megapixel scan (A4 at 600 dpi) is well inside it.
DEFAULT_MAX_PIXELS = 80_000_000

#: Default rendering resolution for PDF pages, in dots per inch.
DEFAULT_PDF_DPI = 200.0

_PDF_MAGIC = b"%PDF-"
#: How the raster files read here begin (PNG, JPEG, BMP, TIFF little and big endian).
_RASTER_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*")
_HOW_TO_FIX = "re-export or re-scan it as PNG, JPEG, TIFF, BMP or PDF"

# Errors Pillow and its plugins raise on corrupt or truncated data.
_PIL_READ_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    MemoryError,
)


@dataclass(frozen=True, eq=False)
class Page:
    """One page of an input file.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The page in RGB, EXIF orientation applied, transparency composited on white.
    source : Path
        The file the page came from.
    page_index : int
        0-based index of the page in the file.
    n_pages : int
        Number of pages in the file (1 for PNG, JPEG and BMP).
    dpi : float or None
        Resolution in dots per inch: as stored in the file for raster images (None when the
        file does not say), the rendering resolution for PDF pages.
    """

    image: np.ndarray
    source: Path
    page_index: int
    n_pages: int
    dpi: float | None = None

    @property
    def stem(self) -> str:
        """Output file stem: the file stem, or ``<stem>_p<N>`` (``N`` 1-based) for multi-page files."""
        return page_stem(self.source, self.page_index, self.n_pages)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self.image.shape[0], self.image.shape[1]


def page_stem(source: str | os.PathLike[str], page_index: int, n_pages: int) -> str:
    """Output stem of page ``page_index`` (0-based) of a file with ``n_pages`` pages.

    ``scan.png`` gives ``"scan"``; page 2 of a 3-page ``batch.pdf`` gives ``"batch_p2"``.
    """
    stem = Path(source).stem
    return stem if n_pages == 1 else f"{stem}_p{page_index + 1}"


def read_image(
    path: str | os.PathLike[str], *, pdf_dpi: float = DEFAULT_PDF_DPI, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read the first page of an image or PDF file.

    Parameters
    ----------
    path : str or path-like
        PNG, JPEG, BMP, TIFF or PDF file.
    pdf_dpi : float, optional
        Resolution at which PDF pages are rendered, in dots per inch.
    max_pixels : int, optional
        Refuse pages with more pixels than this (decompression-bomb guard).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        The first page in RGB.

    Raises
    ------
    UnreadableImageError
        The file is missing, empty, truncated or not an image.
    ImageSizeError
        The page is smaller than 100 px on a side or larger than ``max_pixels``.
    """
    pages = iter_pages(path, pdf_dpi=pdf_dpi, max_pixels=max_pixels)
    try:
        return next(pages).image
    finally:
        pages.close()


def read_pages(
    path: str | os.PathLike[str], *, pdf_dpi: float = DEFAULT_PDF_DPI, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[Page]:
    """Read every page of an image or PDF file.

    Parameters and errors as in :func:`iter_pages`; this loads all pages at once, so prefer
    :func:`iter_pages` for long PDFs.

    Returns
    -------
    list of Page
        One entry per page, in file order.
    """
    return list(iter_pages(path, pdf_dpi=pdf_dpi, max_pixels=max_pixels))


def iter_pages(
    path: str | os.PathLike[str], *, pdf_dpi: float = DEFAULT_PDF_DPI, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[Page]:
    """Yield the pages of an image or PDF file one at a time.

    Only one decoded page is held in memory at a time, so this suits long PDFs and
    multi-page TIFFs.  The path is checked at the call; decoding errors of a page are raised
    when that page is reached.  Close the generator (or exhaust it) to release the file.

    Parameters
    ----------
    path : str or path-like
        PNG (8/16-bit, grey, palette, RGBA), JPEG, BMP, TIFF (single or multi-page) or PDF.
    pdf_dpi : float, optional
        Resolution at which PDF pages are rendered, in dots per inch (default 200).
    max_pixels : int, optional
        Refuse any page with more pixels than this (default 80 megapixels).  Pillow's own
        decompression-bomb error still applies above twice ``PIL.Image.MAX_IMAGE_PIXELS``
        (about 179 megapixels by default) and is reported as :class:`ImageSizeError`.

    Returns
    -------
    generator of Page
        Yields the pages in file order.

    Raises
    ------
    UnreadableImageError
        The file is missing, a folder, empty, truncated, corrupt or not a supported image.
    ImageSizeError
        A page is smaller than 100 px on a side or has more than ``max_pixels`` pixels.
    """
    # Checked here, at the call, so a bad path fails before iteration starts.
    path = _check_file(path)
    if not pdf_dpi > 0:
        raise ValueError(f"pdf_dpi must be positive, got {pdf_dpi}")
    if not max_pixels > 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise UnreadableImageError(
            f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}; check its permissions"
        ) from exc
    if _PDF_MAGIC in head and not head.startswith(_RASTER_MAGIC):
        return _iter_pdf_pages(path, pdf_dpi=pdf_dpi, max_pixels=max_pixels)
    return _iter_raster_pages(path, max_pixels=max_pixels, raster_magic=head.startswith(_RASTER_MAGIC))


def file_sha256(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes as 64 hex digits, read in chunks of ``chunk_bytes``.

    Raises
    ------
    UnreadableImageError
        The file is missing or cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_bytes):
                digest.update(chunk)
    except OSError as exc:
        raise UnreadableImageError(
            f"cannot read {os.fspath(path)!r} to hash it: {exc.strerror or exc}; check the path and its permissions"
        ) from exc
    return digest.hexdigest()


def collect_inputs(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into the list of input files for a batch run.

    Files named explicitly are kept whatever their suffix (reading them reports any problem).
    Folders are searched recursively for files with a suffix in :data:`SUPPORTED_SUFFIXES`
    (case-insensitive), skipping hidden files and folders (names starting with ``.``), and
    their files are sorted by path.  Duplicates are dropped, keeping the first occurrence.

    Parameters
    ----------
    paths : path or iterable of paths
        Files and folders, in the order they should be processed.

    Returns
    -------
    list of Path

    Raises
    ------
    UnreadableImageError
        A path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not files:
                logger.warning("no %s files found in folder %s", "/".join(sorted(SUPPORTED_SUFFIXES)), p)
            for f in files:
                add(f)
        elif p.exists():
            add(p)
        else:
            raise UnreadableImageError(f"input {os.fspath(p)!r} does not exist; check the path")
    return found


# --------------------------------------------------------------------------------------------
# internals


def _check_file(path: str | os.PathLike[str]) -> Path:
    """The path as a Path, after checking it names a non-empty regular file."""
    path = Path(path)
    if not path.exists():
        if os.path.lexists(path):
            raise UnreadableImageError(
                f"{os.fspath(path)!r} is a link that leads nowhere (a broken link or a loop of links); "
                "point it at the image file or pass the file itself"
            )
        raise UnreadableImageError(f"image file {os.fspath(path)!r} does not exist; check the path")
    if path.is_dir():
        raise UnreadableImageError(
            f"{os.fspath(path)!r} is a folder, not an image file; pass one file, "
            "or expand folders with collect_inputs()"
        )
    try:
        st = path.stat()
    except OSError as exc:
        raise UnreadableImageError(f"cannot access {os.fspath(path)!r}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableImageError(
            f"{os.fspath(path)!r} is not a regular file (a pipe, device or socket); save the image to a file first"
        )
    if st.st_size == 0:
        raise UnreadableImageError(
            f"image file {os.fspath(path)!r} is empty (0 bytes); the copy or download probably failed, copy it again"
        )
    return path


@contextlib.contextmanager
def _pillow_errors(path: Path, what: str, *, truncated: bool = False) -> Iterator[None]:
    """Translate Pillow's failures while ``what`` into this package's errors.

    Pillow's DecompressionBombWarning is silenced here (our own ``max_pixels`` check has
    already run) and its DecompressionBombError becomes :class:`ImageSizeError`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", "Corrupt EXIF data", UserWarning)  # the error that follows says it
            yield
    except Image.DecompressionBombError as exc:
        raise ImageSizeError(
            f"{os.fspath(path)!r} is too large to decode safely ({exc}); "
            f"downscale it to at most {DEFAULT_MAX_PIXELS // 1_000_000} megapixels (e.g. scan at 300 dpi)"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        if truncated:  # it begins as a PNG, JPEG, BMP or TIFF does, but its header cannot be read
            raise UnreadableImageError(
                f"cannot {what} {os.fspath(path)!r}: the file is truncated or corrupt; {_HOW_TO_FIX}"
            ) from exc
        raise UnreadableImageError(
            f"{os.fspath(path)!r} is not a supported image (PNG, JPEG, BMP, TIFF or PDF); {_HOW_TO_FIX}"
        ) from exc
    except _PIL_READ_ERRORS as exc:
        raise UnreadableImageError(
            f"cannot {what} {os.fspath(path)!r}: the file is truncated or corrupt ({exc}); {_HOW_TO_FIX}"
        ) from exc


def _check_size(path: Path, width: int, height: int, max_pixels: int, page: int | None = None) -> None:
    """Raise ImageSizeError unless a ``width`` x ``height`` page is within the limits."""
    where = os.fspath(path) if page is None else f"page {page + 1} of {os.fspath(path)}"
    if width * height > max_pixels:
        raise ImageSizeError(
            f"{where!r} is {width}x{height} px ({width * height / 1e6:.0f} megapixels), more than the "
            f"limit of {max_pixels / 1e6:.0f} megapixels; downscale it or scan at 300 dpi"
        )
    if min(width, height) < MIN_SIDE_PX:
        raise ImageSizeError(
            f"{where!r} is {width}x{height} px, too small to hold an ECG; scan at 150 dpi or more "
            f"(at least {MIN_SIDE_PX} px a side)"
        )


def _iter_raster_pages(path: Path, *, max_pixels: int, raster_magic: bool) -> Iterator[Page]:
    """Pages of a file Pillow reads (PNG, JPEG, BMP, TIFF); ``raster_magic``: the file begins as one does."""
    with open(path, "rb") as fh:
        with _pillow_errors(path, "open", truncated=raster_magic):
            img = Image.open(fh, formats=_PIL_FORMATS)
        with img:
            # Only TIFF pages count as pages: extra frames of APNG/MPO files are previews.
            n_pages = int(getattr(img, "n_frames", 1)) if img.format == "TIFF" else 1
            dpi = _pil_dpi(img)
            for index in range(n_pages):
                with _pillow_errors(path, f"read page {index + 1} of"):
                    if index:
                        img.seek(index)
                    _check_size(path, img.width, img.height, max_pixels, index if n_pages > 1 else None)
                    rgb = _to_rgb(_exif_upright(img, path))
                # exif_transpose may swap the sides; the limits are symmetric so no re-check.
                yield Page(rgb, path, index, n_pages, _pil_dpi(img) if index else dpi)


def _exif_upright(img: Image.Image, path: Path) -> Image.Image:
    """The image turned as its EXIF orientation tag says; unchanged if the EXIF block is broken."""
    try:
        return ImageOps.exif_transpose(img)
    except (SyntaxError, ValueError, KeyError, TypeError, struct.error) as exc:
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", path, exc)
        return img


def _pil_dpi(img: Image.Image) -> float | None:
    """Horizontal resolution Pillow found in the file, or None."""
    dpi = img.info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple) else float(dpi)
    except (TypeError, ValueError, IndexError):
        return None
    # 1 dpi is what some writers store for "unknown" (aspect ratio only).
    return value if math.isfinite(value) and value > 1.0 else None


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image to an ``(H, W, 3)`` uint8 RGB array (transparency on white)."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _high_depth_to_uint8(np.asarray(img))
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB", "1") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    rgb = img.convert("RGB")
    return np.array(rgb, dtype=np.uint8)


def _high_depth_to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale a 16-bit, 32-bit integer or float grey image to uint8.

    Integer data is taken as 16-bit (0..65535, the PNG/TIFF convention) unless its range says
    otherwise; floats in [0, 1] are scaled by 255, other floats are clipped to [0, 255].
    """
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64), nan=1.0 if np.nanmax(a) <= 1.0 else 255.0)
        if a.max(initial=0.0) <= 1.0 and a.min(initial=0.0) >= 0.0:
            a = a * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    a = a.astype(np.int64)
    if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
        lo, hi = int(a.min()), int(a.max())
        scaled = (a - lo) * 255.0 / max(hi - lo, 1)
        return np.rint(scaled).astype(np.uint8)
    return ((a * 255 + 32767) // 65535).astype(np.uint8)


def _declares_no_pages(path: Path) -> bool:
    """Whether a PDF's own text says its page tree is empty (``/Count 0``, no ``/Type /Page``)."""
    with open(path, "rb") as fh:
        data = fh.read(1 << 20)
    return re.search(rb"/Count\s+0(?!\d)", data) is not None and re.search(rb"/Type\s*/Page(?!s)", data) is None


def _no_pages(path: Path) -> UnreadableImageError:
    return UnreadableImageError(
        f"PDF {os.fspath(path)!r} is a valid PDF with no pages, so there is nothing to digitize; "
        "check that the right file was exported"
    )


def _iter_pdf_pages(path: Path, *, pdf_dpi: float, max_pixels: int) -> Iterator[Page]:
    """Pages of a PDF rendered with PDFium at ``pdf_dpi``."""
    import pypdfium2 as pdfium

    def unreadable(exc: Exception, what: str) -> UnreadableImageError:
        return UnreadableImageError(
            f"cannot {what} PDF {os.fspath(path)!r} ({exc}); it may be truncated, corrupt or "
            "password-protected: open it in a PDF viewer and export it again, or save the pages as PNG"
        )

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if _declares_no_pages(path):  # PDFium refuses a document without pages as if it were corrupt
            raise _no_pages(path) from exc
        raise unreadable(exc, "open") from exc
    except (OSError, ValueError) as exc:
        raise unreadable(exc, "open") from exc
    try:
        n_pages = len(pdf)
        if n_pages == 0:
            raise _no_pages(path)
        scale = pdf_dpi / 72.0
        for index in range(n_pages):
            try:
                page = pdf[index]
            except (pdfium.PdfiumError, ValueError) as exc:
                raise unreadable(exc, f"read page {index + 1} of") from exc
            try:
                w_pt, h_pt = page.get_size()  # rotation only swaps sides: area and short side agree
                width, height = math.ceil(w_pt * scale), math.ceil(h_pt * scale)
                _check_size(path, width, height, max_pixels, index if n_pages > 1 else None)
                try:
                    bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
                except (pdfium.PdfiumError, ValueError, MemoryError) as exc:
                    raise unreadable(exc, f"render page {index + 1} of") from exc
                try:
                    rgb = _to_rgb(bitmap.to_pil())
                finally:
                    bitmap.close()
            finally:
                page.close()
            _check_size(path, rgb.shape[1], rgb.shape[0], max_pixels, index if n_pages > 1 else None)
            yield Page(rgb, path, index, n_pages, float(pdf_dpi))
    finally:
        pdf.close()
