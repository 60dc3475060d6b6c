"""The learned parts of inference: the trace network, its tiled inference, the lead-name reader,
weights with their model cards, and the registry of model versions.

Training lives apart, in :mod:`ecgstudio.training`; nothing here imports it.
"""
