"""Training the paper-speed network: its pages at 50 mm/s last twice as long as the record's, and
the command line trains weights that load back (and refuses damaged ones)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgstudio.cli import main
from ecgstudio.errors import ModelError
from ecgstudio.io.writers import write_wfdb
from ecgstudio.model.speednet import FS, load_speed_reader
from ecgstudio.paper import LEAD_NAMES
from ecgstudio.results import Signals
from ecgstudio.synth.simulate import simulate_ecg
from ecgstudio.training.speed import speed_example


def _record(seed: int) -> np.ndarray:
    return simulate_ecg(np.random.default_rng(seed), duration_s=10.0, fs=500.0, heart_rate_bpm=60.0).mv


def test_a_page_at_50_mm_s_read_at_25_shows_the_beats_half_as_often() -> None:
    def beats(x: np.ndarray) -> int:
        lead = x[LEAD_NAMES.index("II")]  # lead II at the network's rate, 0 where not read
        high = lead > 0.5 * lead.max()
        return int(np.sum(high[1:] & ~high[:-1]))

    record = _record(0)
    at_25 = [beats(speed_example(record, False, np.random.default_rng(k))) for k in range(20)]
    at_50 = [beats(speed_example(record, True, np.random.default_rng(k))) for k in range(20)]
    assert speed_example(record, True, np.random.default_rng(0)).shape == (2 * len(LEAD_NAMES), int(10 * FS))
    assert np.mean(at_50) < 0.7 * np.mean(at_25)


def test_the_command_line_trains_weights_that_load_and_refuses_damaged_ones(tmp_path, capsys) -> None:
    folder = tmp_path / "records"
    for k in range(3):
        write_wfdb(Signals(_record(k), 500.0, LEAD_NAMES), folder, f"rec{k}")
    out = tmp_path / "speed.pt"
    assert main(["train-speed-reader", "--records", str(folder), "--steps", "2", "--out", str(out), "-q"]) == 0
    assert "saved paper-speed network" in capsys.readouterr().out
    _net, card = load_speed_reader(out)
    assert card.training["steps"] == 2 and card.training["records"] == 3
    card_file = out.with_suffix(".json")
    good = card_file.read_text(encoding="utf-8")
    card_file.write_text(good.replace('"dilations": [', '"dilations": [1, '), encoding="utf-8")
    with pytest.raises(ModelError, match="does not fit its architecture"):
        load_speed_reader(out)
    card_file.write_text(good, encoding="utf-8")
    out.write_bytes(out.read_bytes()[:-10])
    with pytest.raises(ModelError, match="paper-speed network"):
        load_speed_reader(out)


def test_signals_with_nothing_read_for_a_second_are_not_taken_for_50_mm_s() -> None:
    from ecgstudio.calibration import double_speed

    reader, _ = load_speed_reader()
    assert not double_speed(Signals(np.full((5000, 12), np.nan), 500.0, LEAD_NAMES), reader)
    assert not double_speed(Signals(np.zeros((20, 12)), 500.0, LEAD_NAMES), reader)
    assert not double_speed(Signals(np.zeros((0, 12)), 500.0, LEAD_NAMES), reader)


def test_leads_are_taken_by_any_spelling_and_sign_and_the_longest_of_twins() -> None:
    from ecgstudio.model.speednet import doubled_log_odds

    reader, _ = load_speed_reader()
    record = _record(4)
    plain = doubled_log_odds(reader, Signals(record, 500.0, LEAD_NAMES))
    names = [f"ECG lead_{n}" for n in LEAD_NAMES]
    names[LEAD_NAMES.index("aVR")] = "-aVR"
    spelled = record.copy()
    spelled[:, LEAD_NAMES.index("aVR")] *= -1
    short_twin = np.full((len(record), 1), np.nan)
    short_twin[:100, 0] = 5.0  # a lead II read for 0.2 s beside the whole one
    mixed = Signals(np.hstack([short_twin, spelled]), 500.0, ["II", *names])
    assert doubled_log_odds(reader, mixed) == pytest.approx(plain, abs=1e-4)
