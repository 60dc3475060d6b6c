"""Stage 1 of digitizing: page geometry.

Find how a scan or photo is turned, where the paper is, remove perspective and skew, and
measure the millimetre grid that calibrates every later measurement.

>>> page = rectify(image)                      # doctest: +SKIP
>>> page.calibration_hint.px_per_mm_x          # doctest: +SKIP
7.874

Functions
---------
rectify
    The whole stage: quarter turn, paper outline, perspective, deskew, grid.
estimate_grid
    Grid scale (px/mm along x and y), skew and confidence of a page.
estimate_skew, deskew
    Small-angle skew of a page and its correction.
quarter_turn, rotate_quarter
    Pages turned sideways or upside down.
find_paper
    The paper outline in a photo.
invert_points, map_points
    Map coordinates between the input and the rectified image.
page_px_per_mm
    The scale a rectified page is digitized at (its grid's, or a guess without one).
"""

from .grid import GridEstimate, as_rgb, estimate_grid, estimate_skew, line_signal
from .rectify import (
    RectifiedPage,
    deskew,
    find_paper,
    invert_points,
    map_points,
    page_px_per_mm,
    quarter_turn,
    rectify,
    rotate_quarter,
)

__all__ = [
    "GridEstimate",
    "RectifiedPage",
    "as_rgb",
    "deskew",
    "estimate_grid",
    "estimate_skew",
    "find_paper",
    "invert_points",
    "line_signal",
    "map_points",
    "page_px_per_mm",
    "quarter_turn",
    "rectify",
    "rotate_quarter",
]
