"""Lead names: words found near box starts, read by the shipped reader, and the leads they give."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ecgstudio import boxes as box_stage
from ecgstudio import leadnames
from ecgstudio import path as path_stage
from ecgstudio.errors import ModelError
from ecgstudio.metrics import score_record
from ecgstudio.model.namenet import NAME_CLASSES, load_reader, reader_accuracy, train_reader
from ecgstudio.model.net import CANONICAL_PX_PER_MM
from ecgstudio.paper import LEAD_NAMES, Cell, Layout
from ecgstudio.pipeline import DigitizeOptions, analyse_maps
from ecgstudio.results import LeadBox, Trace
from ecgstudio.synth.render import PageStyle, render_page
from ecgstudio.training.data import trace_heatmap

DPI = 25.4 * CANONICAL_PX_PER_MM


def _box(lead: str, row: int, col: int = 0, duration: float = 10.0, inverted: bool = False) -> LeadBox:
    return LeadBox(
        lead=lead,
        x0=100.0 + 600 * col,
        y0=100.0 * row,
        x1=700.0 + 600 * col,
        y1=100.0 * row + 90,
        baseline_y=100.0 * row + 60,
        t_start_s=duration * col,
        duration_s=duration,
        row=row,
        col=col,
        inverted=inverted,
    )


def _trace_across(box: LeadBox) -> Trace:
    x = np.arange(box.x0, box.x1)
    return Trace(box.lead, np.column_stack([x, np.full(len(x), box.baseline_y)]), np.ones(len(x), np.float32))


def _read(i: int, name: str, p: float = 0.97) -> leadnames.NameRead:
    probs = np.full(len(NAME_CLASSES), (1 - p) / (len(NAME_CLASSES) - 1))
    probs[NAME_CLASSES.index(name)] = p
    return leadnames.NameRead(i, (0.0, 0.0, 1.0, 1.0), probs)


def test_names_read_on_the_page_override_the_template() -> None:
    boxes = (_box("II", 0), _box("V5", 1))
    out = box_stage.assign_leads(boxes, [_read(0, "V5"), _read(1, "II")])
    assert [b.lead for b in out] == ["V5", "II"]
    # One name read is enough: the other box takes the lead left over.
    out = box_stage.assign_leads(boxes, [_read(0, "V5"), None])
    assert [b.lead for b in out] == ["V5", "II"]


def test_unread_or_unsure_boxes_keep_the_template_and_a_misread_cannot_steal() -> None:
    boxes = tuple(_box(lead, k % 3, k // 3, 2.5) for k, lead in enumerate(LEAD_NAMES))
    assert [b.lead for b in box_stage.assign_leads(boxes, [None] * 12)] == list(LEAD_NAMES)
    unsure = [_read(i, "V4", 0.6) for i in range(12)]
    assert [b.lead for b in box_stage.assign_leads(boxes, unsure)] == list(LEAD_NAMES)
    # V1 misread as V4 while the V4 box reads V4 clearly: both keep their leads.
    reads = [_read(i, lead) for i, lead in enumerate(LEAD_NAMES)]
    reads[LEAD_NAMES.index("V1")] = _read(LEAD_NAMES.index("V1"), "V4", 0.9)
    assert [b.lead for b in box_stage.assign_leads(boxes, reads)] == list(LEAD_NAMES)


def test_a_name_read_as_another_lead_puts_that_lead_in_doubt_and_says_so() -> None:
    from ecgstudio.assumptions import collected
    from ecgstudio.signals import lead_confidence

    # Two boxes read "II": the assignment gives the second another lead, against its name.
    boxes = box_stage.assign_leads((_box("II", 0), _box("V5", 1)), [_read(0, "II"), _read(1, "II", 0.9)])
    reads = [_read(0, "II"), _read(1, "II", 0.9), None]
    boxes = (*boxes, _box("V1", 2))
    with collected() as told:
        caps = leadnames.name_doubts(boxes, reads)
    assert caps == {"V5": pytest.approx(0.1)}
    assert [a.what for a in told] == ["layout"] and "lead V5 (row 2) reads II" in told[0].text
    # Unsure reads of another name do not: the reader is often unsure of a name it reads right.
    assert leadnames.name_doubts(boxes, [None, _read(1, "aVL", 0.4), None]) == {}
    traces = tuple(_trace_across(b) for b in boxes)
    assert lead_confidence(boxes, traces, caps=caps)["V5"] == pytest.approx(0.1)
    assert lead_confidence(boxes, traces, caps=caps)["V1"] == pytest.approx(1.0)


def test_a_page_whose_names_disagree_with_its_leads_is_flagged(shared_data, digitizer) -> None:
    # A damaged ecg-image-kit page (development set) the engine reads wrongly (under 3 dB): the
    # name printed by its lead I box reads aVR, so lead I loses its confidence and the page says why.
    image = shared_data / "ecg-image-kit-dev" / "damaged" / "02153_hr-0.png"
    if not image.is_file():
        pytest.skip(f"{image} is not in this checkout's data")
    from ecgstudio.io.images import read_image

    result = digitizer.digitize(read_image(image))
    doubts = [a.text for a in result.assumptions if "name printed" in a.text]
    assert "the name printed at lead I (row 1) reads aVR; check the leads" in doubts
    assert result.confidence["I"] < 0.5 < result.confidence["II"]


def test_a_box_read_as_minus_avr_is_inverted() -> None:
    cabrera = ("aVL", "I", "aVR", "II", "aVF", "III")
    boxes = tuple(_box(lead, k, 0, 10.0) for k, lead in enumerate(("I", "II", "III", "aVR", "aVL", "aVF")))
    reads = [_read(k, "-aVR" if lead == "aVR" else lead) for k, lead in enumerate(cabrera)]
    out = box_stage.assign_leads(boxes, reads)
    assert [b.lead for b in out] == list(cabrera)
    assert [b.inverted for b in out] == [lead == "aVR" for lead in cabrera]


def test_words_are_glyphs_grouped_at_a_name_size() -> None:
    mm = CANONICAL_PX_PER_MM
    glyphs = np.zeros((200, 300), bool)
    glyphs[50:68, 20:23] = True  # "I": 3 mm tall
    glyphs[50:68, 27:30] = True  # a second stroke 0.7 mm away: "II"
    glyphs[120:138, 100:112] = True  # another word
    glyphs[10:15, 0:300] = True  # a long line: not a glyph
    glyphs[150:152, 200:202] = True  # a speck
    words = leadnames.find_words(glyphs, px_per_mm=mm)
    assert sorted(words) == [(20, 50, 30, 68), (100, 120, 112, 138)]


def test_shipped_reader_reads_rendered_names() -> None:
    net, card = load_reader()
    assert card.classes == NAME_CLASSES
    assert reader_accuracy(net, np.random.default_rng(12345), n=600) > 0.9


def _oracle(page):
    """The post-network stages on the page's exact maps, with the shipped reader."""
    prob = trace_heatmap(page.traces, page.image.shape[:2])
    options = DigitizeOptions(mm_per_s=page.style.mm_per_s, mm_per_mv=page.style.mm_per_mv)
    return analyse_maps(prob, page.masks.text.astype(np.float32), page.image, options, reader=load_reader()[0])


@pytest.mark.parametrize("order", [("V5", "II"), ("II", "V5")])
def test_a_two_lead_strip_takes_its_leads_from_its_printed_names(order: tuple[str, str]) -> None:
    printed = Layout("2x1", 2, tuple(Cell(lead, row, 0, 0.0, 10.0) for row, lead in enumerate(order)), 10.0)
    style = replace(PageStyle(layout="2x1", dpi=DPI), lead_labels=True, label_below=True)
    page = render_page(style=style, seed=5, layout=printed)
    result = _oracle(page)
    assert [b.lead for b in sorted(result.boxes, key=lambda b: b.row)] == list(order)
    truth, got = page.signals.lead(order[0]), result.signals.lead(order[0])
    n = min(len(truth), len(got))
    ok = np.isfinite(got[:n]) & np.isfinite(truth[:n])
    assert np.corrcoef(truth[:n][ok], got[:n][ok])[0, 1] > 0.9


def test_a_cabrera_page_is_recognised_by_its_names() -> None:
    style = replace(PageStyle(layout="cabrera-3x4+1", dpi=DPI), lead_labels=True, label_below=False)
    page = render_page(style=style, seed=6)
    result = _oracle(page)
    assert result.layout.name == "cabrera-3x4+1"
    inverted = [b.lead for b in result.boxes if b.inverted]
    assert inverted == ["aVR"]
    score = score_record(page.signals, result.signals, layout=page.layout)
    assert score.leads["aVR"].pearson_r > 0.6  # read upright again: printed upside down, it would be negative


def test_reader_training_saves_weights_that_load_and_refuses_corrupt_ones(tmp_path) -> None:
    out = tmp_path / "names.pt"
    card = train_reader(out, steps=2, batch=8)
    _net, loaded = load_reader(out)
    assert loaded.sha256 == card.sha256 and "held_out_crop_accuracy" in loaded.metrics
    out.write_bytes(out.read_bytes()[:-10])
    with pytest.raises(ModelError, match="does not match"):
        load_reader(out)


def test_a_name_the_trace_ran_onto_is_masked_but_not_the_lead_before_it() -> None:
    boxes = (_box("I", 0, 0, 2.5), _box("aVR", 0, 1, 2.5))
    read = leadnames.NameRead(1, (710.0, 70.0, 730.0, 82.0), _read(1, "aVR").probs)
    ((x0, y0, x1, y1),) = leadnames.name_boxes([None, read], boxes)
    assert (x0, y0, x1, y1) == (boxes[1].x0, 70.0, 730.0, 82.0)  # widened left, not past the box start
    path = np.array([[690.0, 60.0], [705.0, 75.0], [np.nan, np.nan]])
    assert leadnames.enters(path, [(x0, y0, x1, y1)])
    assert not leadnames.enters(path[:1], [(x0, y0, x1, y1)])
    prob = path_stage.without_regions(np.ones((100, 800), np.float32), [(x0, y0, x1, y1)])
    assert prob[75, 705] == 0.0 and prob[75, 695] == 1.0 and prob[60, 705] == 1.0


def test_rows_above_the_first_named_row_are_dropped_only_when_they_look_unlike_traces() -> None:
    from types import SimpleNamespace

    def rows(likeness):
        return [SimpleNamespace(baseline_y=100.0 * k, trace_likeness=v) for k, v in enumerate(likeness)]

    reads = [[None] * 4, [None] * 4] + [[_read(0, "II")] + [None] * 3] * 4
    grid_rows = rows([500, 600, 1000, 980, 880, 1050])
    assert leadnames.drop_rows_above_names(grid_rows, reads) == grid_rows[2:]
    faded_leads = rows([950, 900, 1000, 980, 880, 1050])  # trace-like rows whose names did not read
    assert leadnames.drop_rows_above_names(faded_leads, reads) == faded_leads
    nine = rows([500] + [1000] * 8)  # eight rows left would be no standard layout
    assert leadnames.drop_rows_above_names(nine, [[None] * 4] + [[_read(0, "V1")] + [None] * 3] * 8) == nine


def test_only_names_that_read_one_way_up_say_which_way_up_the_page_is() -> None:
    reads = [_read(0, "I"), _read(1, "II"), _read(2, "III"), None, _read(4, "aVR"), _read(5, "V1")]
    assert leadnames.one_way_up(reads) == 2
    assert leadnames.one_way_up(reads[:4]) == 0
