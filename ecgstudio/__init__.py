"""ECG Studio: turn paper ECGs into calibrated 12-lead signals."""

__version__ = "0.1.0"
