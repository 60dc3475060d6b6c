"""Paper conventions: the millimetre grid, paper speeds, gains and lead layouts, as data.

Everything on an ECG page is measured in millimetres of paper: the small grid square is 1 mm,
the large one 5 mm; at 25 mm/s one small square is 40 ms, at 10 mm/mV one small square is
0.1 mV.  A :class:`Layout` says which lead is plotted where and over which time window; the
renderer, the layout finder, the metric and the writers all read the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LayoutError

#: The twelve standard leads, in the order used for every ``(n_samples, 12)`` signal array.
#: How the columns of a page can follow each other in time: one after the other (the standard)
#: or all starting at 0 s.
COLUMN_ORDERS: tuple[str, ...] = ("consecutive", "from-zero")

LEAD_NAMES: tuple[str, ...] = (
    "I",
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)

#: Paper speeds in mm/s and gains in mm/mV that printers use.
PAPER_SPEEDS_MM_S: tuple[float, ...] = (25.0, 50.0)
GAINS_MM_MV: tuple[float, ...] = (5.0, 10.0, 20.0)

#: Paper sizes (width, height) in mm, landscape.
PAPER_SIZES_MM: dict[str, tuple[float, float]] = {
    "letter": (279.4, 215.9),
    "a4": (297.0, 210.0),
}

MINOR_MM = 1.0
MAJOR_MM = 5.0


def lead_index(name: str) -> int:
    """Index of a lead name in :data:`LEAD_NAMES` (accepts common spellings, e.g. ``AVR``, ``MLII``)."""
    aliases = {"MLII": "II", "ML2": "II", "-aVR": "aVR"}
    canonical = aliases.get(name, name)
    for i, lead in enumerate(LEAD_NAMES):
        if lead.lower() == canonical.lower():
            return i
    raise LayoutError(f"unknown lead name {name!r}; expected one of {', '.join(LEAD_NAMES)}")


@dataclass(frozen=True)
class Cell:
    """One plotted lead segment on the page.

    Attributes
    ----------
    lead : str
        Lead name from :data:`LEAD_NAMES`.
    row, col : int
        Grid position; ``col`` counts columns of the row's own division (a rhythm strip has one).
    t_start_s, duration_s : float
        The time window of the record shown in this cell, in seconds from the record start.
    inverted : bool
        True for a lead printed upside down (``-aVR`` in the Cabrera order).
    """

    lead: str
    row: int
    col: int
    t_start_s: float
    duration_s: float
    inverted: bool = False

    @property
    def label(self) -> str:
        """The text printed next to the trace (``-aVR`` for an inverted aVR)."""
        return f"-{self.lead}" if self.inverted else self.lead

    @property
    def t_end_s(self) -> float:
        return self.t_start_s + self.duration_s


@dataclass(frozen=True)
class Layout:
    """Where each lead is drawn: rows of cells over a common record duration."""

    name: str
    n_rows: int
    cells: tuple[Cell, ...]
    duration_s: float = 10.0

    def with_duration(self, duration_s: float) -> Layout:
        """The same layout showing ``duration_s`` seconds in total (e.g. 5 s at 50 mm/s)."""
        k = duration_s / self.duration_s
        cells = tuple(Cell(c.lead, c.row, c.col, c.t_start_s * k, c.duration_s * k, c.inverted) for c in self.cells)
        return Layout(self.name, self.n_rows, cells, duration_s)

    def row_cells(self, row: int) -> tuple[Cell, ...]:
        return tuple(sorted((c for c in self.cells if c.row == row), key=lambda c: c.col))

    def cells_for(self, lead: str) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.lead == lead)

    @property
    def leads(self) -> tuple[str, ...]:
        """Leads shown on the page, in :data:`LEAD_NAMES` order."""
        shown = {c.lead for c in self.cells}
        return tuple(lead for lead in LEAD_NAMES if lead in shown)

    def plotted_window_s(self, lead: str) -> tuple[float, float] | None:
        """The union time window in which ``lead`` is plotted, or None if it is not shown.

        Where a lead is shown twice (a short cell and a rhythm strip) the longer window wins.
        """
        cells = self.cells_for(lead)
        if not cells:
            return None
        best = max(cells, key=lambda c: c.duration_s)
        return best.t_start_s, best.t_end_s


def _grid_layout(
    name: str,
    columns: list[list[str]],
    rhythm: list[str],
    duration_s: float = 10.0,
    inverted: frozenset[str] = frozenset(),
) -> Layout:
    """A layout of ``len(columns)`` columns (each a list of leads from top to bottom) plus rhythm rows."""
    n_cols = len(columns)
    n_short_rows = len(columns[0])
    seg = duration_s / n_cols
    cells = []
    for col, leads in enumerate(columns):
        for row, lead in enumerate(leads):
            cells.append(Cell(lead, row, col, col * seg, seg, lead in inverted))
    for k, lead in enumerate(rhythm):
        cells.append(Cell(lead, n_short_rows + k, 0, 0.0, duration_s))
    return Layout(name, n_short_rows + len(rhythm), tuple(cells), duration_s)


_STD_3X4 = [["I", "II", "III"], ["aVR", "aVL", "aVF"], ["V1", "V2", "V3"], ["V4", "V5", "V6"]]
_CAB_3X4 = [["aVL", "I", "aVR"], ["II", "aVF", "III"], ["V1", "V2", "V3"], ["V4", "V5", "V6"]]
_STD_6X2 = [["I", "II", "III", "aVR", "aVL", "aVF"], ["V1", "V2", "V3", "V4", "V5", "V6"]]
_CAB_6X2 = [["aVL", "I", "aVR", "II", "aVF", "III"], ["V1", "V2", "V3", "V4", "V5", "V6"]]
_STD_12 = [list(LEAD_NAMES)]
_CAB_12 = [["aVL", "I", "aVR", "II", "aVF", "III", "V1", "V2", "V3", "V4", "V5", "V6"]]
_NEG_AVR = frozenset({"aVR"})

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        _grid_layout("3x4", _STD_3X4, []),
        _grid_layout("3x4+1", _STD_3X4, ["II"]),
        _grid_layout("3x4+3", _STD_3X4, ["V1", "II", "V5"]),
        _grid_layout("6x2", _STD_6X2, []),
        _grid_layout("6x2+1", _STD_6X2, ["II"]),
        _grid_layout("12x1", _STD_12, []),
        _grid_layout("2x1", [["II", "V5"]], []),
        _grid_layout("cabrera-3x4+1", _CAB_3X4, ["II"], inverted=_NEG_AVR),
        _grid_layout("cabrera-6x2", _CAB_6X2, [], inverted=_NEG_AVR),
        _grid_layout("cabrera-12x1", _CAB_12, [], inverted=_NEG_AVR),
    )
}


def get_layout(name: str) -> Layout:
    """Look up a layout by name (see :data:`LAYOUTS`); raises :class:`LayoutError` naming the choices."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; choose one of: {', '.join(LAYOUTS)}") from None
