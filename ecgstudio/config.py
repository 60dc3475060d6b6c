"""The engine's settings: one frozen :class:`EngineConfig`, nested per stage.

Every knob a stage has lives here, with the default the benchmarks chose (BENCHMARKS.md);
physical facts (paper sizes, lead names, the scale the network was trained at) stay constants
of their modules.  A stage function takes its own part (``find_rows(..., config=RowsConfig())``);
:class:`ecgstudio.pipeline.Digitizer` takes the whole, so a test or a benchmark tries another
setting by passing another config instead of changing a module's globals::

    config = EngineConfig(path=PathConfig(jump_cost=0.5))
    Digitizer(config=config).digitize(image)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GeometryConfig:
    """Turning, flattening and deskewing a page and measuring its grid (:mod:`ecgstudio.geometry`)."""

    #: A grid measured with less confidence than this is reported as no grid.
    has_grid_confidence: float = 0.2
    #: Largest skew searched, degrees.
    max_skew_deg: float = 15.0
    #: Longer sides (px) of the copies the skew search works on: 1 deg, 0.25 deg and 0.05 deg steps.
    skew_sides_px: tuple[int, int, int] = (320, 640, 800)
    #: Vertical lines get their own angle (shear) only where their best column profile is this
    #: many times sharper than the median one ...
    min_shear_contrast: float = 1.5
    #: ... and their angle differs from the horizontal lines' by at most this (degrees).
    max_shear_deg: float = 3.0
    #: A harmonic of the grid counts as present when it stands this far above its neighbourhood ...
    line_prominence: float = 10.0
    #: ... and holds at least this share of the strongest peak's power.
    line_relative_power: float = 0.004
    #: Text decides up or down when at least this many glyphs vote ...
    text_min_glyphs: int = 20
    #: ... with at least this clear a net vote; otherwise trace polarity decides.
    text_vote: float = 0.08
    #: An upside-down verdict from polarity needs this clear a majority of downward windows ...
    flip_vote: float = 0.3
    #: ... among at least this many voting windows; otherwise the page is kept as it is.
    flip_min_windows: int = 12
    #: Where the ink tells the rows' axis by a margin under this, the trace network reads the page
    #: both ways at half the canonical scale ...
    check_sideways_below: float = 0.6
    #: ... and the page is turned where the other way shows this many times the trace rows.
    sideways_evidence: float = 1.5
    #: Working size of the turn, outline and skew searches (longer side, px).
    work_side_px: int = 1000
    #: Size at which local line directions are measured for perspective (longer side, px).
    strip_side_px: int = 700
    #: Grid cells are made square where their sides differ by more than this share after a
    #: perspective correction ...
    square_after_perspective: float = 0.002
    #: ... and by more than this (beyond the grid's own measuring noise) on flat pages, whose
    #: pixels printers, scanners, faxes and screenshot tools may scale apart.
    square_flat: float = 0.01


@dataclass(frozen=True)
class SegmentationConfig:
    """Running the trace network over a page (:mod:`ecgstudio.segmentation`)."""

    #: Pages with more pixels than ``tile_px**2``, or a side longer than ``2 * tile_px``, are
    #: processed in overlapping tiles of at most this many px a side, as few as cover the page.
    tile_px: int = 2048
    #: Tiles overlap by at least twice this (px); only each tile's inner part is kept.
    overlap_px: int = 96
    #: Pages scanned finer than the canonical scale are traced again at up to this many px per
    #: mm: 200 dpi pages (7.87 px/mm) at their own resolution, 10 % beyond the finest scale the
    #: network is trained on, where the shape of the QRS complexes still gains (BENCHMARKS.md).
    fine_px_per_mm: float = 7.9
    #: ... where the page's own resolution allows at least this many times the canonical scale
    #: (on the benchmark pages +0.7 dB at 7.2 px/mm and +0.4 dB more at 7.9).
    min_fine_gain: float = 1.1
    #: Pages read at fewer px per mm than this (38 dpi) are refused: upscaled to the canonical
    #: scale they would cost gigabytes and show no trace.
    min_px_per_mm: float = 1.5
    #: Images longer than this many times their width (or wider than tall) are refused as strips
    #: no page or rhythm strip is (a 10 s strip is about 10:1).
    max_aspect: float = 20.0


@dataclass(frozen=True)
class RowsConfig:
    """Finding the rows of traces (:mod:`ecgstudio.layout`)."""

    #: Trace probability counted as ink in the row profile.
    threshold: float = 0.3
    #: A candidate row with more of its trace mass than this within 3 px of one line is a ruled line.
    max_straight_share: float = 0.6
    #: A candidate row drawn along less than this share of the best row's coverage is a broken line.
    min_coverage_share: float = 0.75
    #: A candidate row spanning less than this share of the widest one's width is text or a mark.
    min_width_share: float = 0.35
    #: A straight candidate row is kept only if unbroken: at least this share of the best coverage.
    unbroken_share: float = 0.97
    #: A broken (not straight) candidate row is kept after all where it continues the kept rows'
    #: lattice: one pitch from a kept row within this share of the pitch ...
    lattice_tolerance: float = 0.12
    #: ... drawn along at least this share of the kept rows' common columns ...
    min_lattice_overlap: float = 0.8
    #: ... and covering at least this share of the best coverage.
    min_lattice_coverage: float = 0.5
    #: Rows missing from an evenly spaced lattice (overlapping rows, :func:`~ecgstudio.layout.fill_lattice`)
    #: are put back where every row found lies within this share of a pitch of its slot ...
    fill_tolerance: float = 0.25
    #: ... and the row profile at each empty slot is at least this share of its median at the rows.
    min_fill_mass: float = 0.3
    #: A page without a grid takes its scale from its traces' width where that differs from the
    #: whole-letter-page guess by a factor whose log lies in this range (2 % to 40 %).
    width_correction: tuple[float, float] = (0.02, 0.34)


@dataclass(frozen=True)
class CalibrationConfig:
    """Calibration pulses, gain and speed (:mod:`ecgstudio.calibration`)."""

    #: Below this source resolution (px per mm) calibration pulses are not measured: the square-wave
    #: check needs the pulse's edges and bar apart (at 2 px/mm a 5 mm bar is 10 px wide, a 10 mm
    #: pulse 20 px tall; 50-75 dpi pages were assumed 10 mm/mV below 3 px/mm before).
    min_pulse_px_per_mm: float = 2.0
    #: Gain assumed where the user gives none and no pulse is measured (mm/mV).
    default_mm_per_mv: float = 10.0
    #: Paper speed assumed where the user gives none (mm/s).
    default_mm_per_s: float = 25.0
    #: A page read at the default speed, with no speed given or printed, is read again at twice
    #: that speed (50 mm/s) where the paper-speed network's log-odds for it pass this (BENCHMARKS.md).
    min_double_speed_log_odds: float = 2.0


@dataclass(frozen=True)
class NamesConfig:
    """Reading the printed lead names (:mod:`ecgstudio.leadnames`) and settings (:mod:`ecgstudio.printed`)."""

    #: Below this source resolution (px per mm) lead names are not read (aVL and aVF blur together).
    min_px_per_mm: float = 3.5
    #: A read counts where the reader gives one name at least this probability.
    min_read_prob: float = 0.8
    #: Words read per box, nearest to its start first.
    max_words_per_box: int = 16
    #: A box whose printed name reads as another lead with at least this probability is in doubt:
    #: its lead's confidence falls to at most one minus that probability, and the page says so.
    min_doubt_prob: float = 0.5
    #: A printed speed or gain ("25 mm/s", "10 mm/mV") is read where the printed-settings reader
    #: gives it at least this probability somewhere on the page (:mod:`ecgstudio.printed`).
    min_setting_prob: float = 0.9
    #: A page is turned half round where, so turned, at least this many lead names read with
    #: confidence, and more than twice as many as the other way up (:func:`~ecgstudio.leadnames.upside_down`).
    flip_min_names: int = 3


@dataclass(frozen=True)
class BoxesConfig:
    """Placing the lead boxes in time (:mod:`ecgstudio.boxes`)."""

    #: A row whose trace is as wide as the page's time span within this many mm starts where its
    #: trace does (else where most rows agree the page starts).
    own_width_mm: float = 2.0
    #: A box's start moves onto a major grid line this far (mm) before or after it ...
    origin_snap_mm: tuple[float, float] = (-0.2, 0.5)
    #: ... found where the grid's 1 mm harmonic outweighs its 5 mm fundamental at most
    #: 1 / this many times (major lines no heavier than minor ones are not found).
    min_major_emphasis: float = 0.25
    #: Sample corners are looked for only where one sample spans at least this many pixels ...
    min_sample_px: float = 1.0
    #: ... and trusted only where the best phase leaves at most this share of the typical phase's misfit.
    max_corner_misfit: float = 0.8


@dataclass(frozen=True)
class PathConfig:
    """The Viterbi search for a row's trace (:mod:`ecgstudio.path`), in pixels of the traced page."""

    threshold: float = 0.7  # probability that counts as ink
    max_segments: int = 6  # candidates per column
    jump_cost: float = 0.35  # per pixel of vertical gap between consecutive segments
    gap_cost: float = 3.0  # per column left empty
    enter_gap_cost: float = 4.0  # to start or end a gap
    baseline_weight: float = 6.0  # penalty per row spacing beyond half a spacing from the own baseline
    text_weight: float = 4.0  # penalty for a segment on non-signal ink (probability 1)
    reentry_cost: float = 0.15  # per pixel between where a gap began and where the trace resumes
    #: A separator tick: a dark upright bar at least this tall (mm) ...
    separator_min_mm: float = 2.5
    #: ... and this wide (columns), whose columns start and end together within this many px.
    separator_min_cols: int = 2
    separator_even_px: int = 2
    #: How far (mm) a trace read again from finer maps may move from where it was first read.
    retrace_reach_mm: float = 1.5


@dataclass(frozen=True)
class StrokesConfig:
    """Turning a path into curve points (:mod:`ecgstudio.strokes`)."""

    #: A segment this much taller (px) than the row's flat-trace segment holds a steep stroke.
    stroke_px: float = 1.5
    #: Least rise (px) between two turning points for their stroke to be followed row by row.
    min_rise_px: int = 4
    #: A tall run at most this many columns wide between two flat columns is a line crossing the
    #: trace (a dark grid line, a separator) ...
    crossing_max_px: int = 2
    #: ... or, between columns of any height, one this many times taller than they are ...
    crossing_height_ratio: float = 3.0
    #: ... and at least this tall (px).
    crossing_min_px: int = 24
    #: A stroke that turns where printed text begins is followed along the ink at most this far
    #: (mm): a deep S wave runs on through the lead name printed under it, while the network calls
    #: the shared ink text and the path turns at the name's top.  Ink running on further is a
    #: ruled line.
    through_text_max_mm: float = 8.0
    #: Only turns of strokes at least this tall (mm, prominence) are followed.
    through_text_min_stroke_mm: float = 1.5


@dataclass(frozen=True)
class SignalsConfig:
    """From traces to samples in mV (:mod:`ecgstudio.signals`)."""

    #: Paper (mm) on either side of a change of lead within a row whose samples are left out.
    lead_change_mm: float = 0.4
    #: Output samples finer than a traced trace are low-passed at this share of the traced
    #: frame's pixels per second (zero-phase, second order).
    band_limit: float = 0.4
    #: A page without a clear grid (none, or found with less than this confidence) is taken for
    #: an ECG only where one lead at least is read with this confidence: lines and letters of a
    #: drawing or a logo give short, broken "traces" (the lowest best lead on the 112 pages of
    #: both pairs tables is 0.51, on a heavily damaged page with a clear grid).
    min_gridless_confidence: float = 0.4
    #: Limb leads read at the same moments that miss their exact relations by more than this
    #: (:func:`ecgstudio.signals.limb_disagreement`; pages read right: mostly 0.02-0.15, more
    #: where rows are read a little apart in time; leads in the wrong places: 0.5-1.4) have the
    #: other layouts with as many rows tried ...
    limb_check_above: float = 0.25
    #: ... one of which is taken where it disagrees less than this share as much, and less than
    #: ``limb_adopt_below``.
    limb_better_share: float = 0.5
    limb_adopt_below: float = 0.4


@dataclass(frozen=True)
class TimingConfig:
    """How the columns of a page follow each other in time (:mod:`ecgstudio.timing`)."""

    #: The simultaneous reading must match the rhythm strip at least this well (normalised
    #: cross-correlation of beat envelopes) ...
    min_match: float = 0.5
    #: ... and this much better than the consecutive reading.
    min_margin: float = 0.3
    #: Residual misplacement searched either way when matching, seconds.
    search_s: float = 0.05
    #: Without a rhythm strip, a column counts when its start lies at least this far from a
    #: whole number of the first column's beats (seconds): nearer, both readings put its beats
    #: in the same places.
    min_phase_s: float = 0.1
    #: A page whose traces run backwards in time by more than this evidence
    #: (:func:`ecgstudio.timing.time_direction`), and forwards by as much with the page turned
    #: half round, is read turned, unless lead names read the right way up (the truth of 236 of
    #: 237 records drawn 3x4 + 1 runs forwards by more than 2).
    turn_evidence: float = 2.0


@dataclass(frozen=True)
class EngineConfig:
    """Every setting of the digitizing engine, one part per stage."""

    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    rows: RowsConfig = field(default_factory=RowsConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    names: NamesConfig = field(default_factory=NamesConfig)
    boxes: BoxesConfig = field(default_factory=BoxesConfig)
    path: PathConfig = field(default_factory=PathConfig)
    strokes: StrokesConfig = field(default_factory=StrokesConfig)
    signals: SignalsConfig = field(default_factory=SignalsConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
