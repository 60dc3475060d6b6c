"""Exceptions raised by ECG Studio.  Each message says what is wrong and what to do about it."""


class EcgStudioError(Exception):
    """Base class of every error ECG Studio raises on purpose."""


class UnreadableImageError(EcgStudioError):
    """A file could not be read as an image (missing, truncated, unknown format, empty)."""


class ImageSizeError(EcgStudioError):
    """An image is too small to hold an ECG or too large to process safely."""


class NotAnEcgError(EcgStudioError):
    """The image does not look like an ECG page (no grid, no traces).

    The message always starts with "no ECG found", whichever stage raised it.
    """

    def __init__(self, message: str) -> None:
        if not message.lower().startswith("no ecg found"):
            message = f"no ECG found: {message}"
        super().__init__(message)


class LayoutError(EcgStudioError):
    """An unknown layout or lead name, or a layout that does not fit the page."""


class SignalFormatError(EcgStudioError):
    """A signal file (WFDB, CSV, EDF) could not be read or does not hold what was expected."""


class LabelFormatError(EcgStudioError):
    """A label file has an unknown schema version or a broken structure."""


class ModelError(EcgStudioError):
    """Model weights are missing, corrupt (sha256 mismatch) or do not match their model card."""
