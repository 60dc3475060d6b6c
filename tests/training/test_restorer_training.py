"""Training the restoration network: the readings it learns from look like a page's, training
checkpoints and resumes, and the command line trains weights that load back."""

from __future__ import annotations

import numpy as np
import pytest

from ecgstudio.cli import main
from ecgstudio.io.writers import write_wfdb
from ecgstudio.model.restorenet import load_restorer
from ecgstudio.paper import LEAD_NAMES
from ecgstudio.results import Signals
from ecgstudio.synth.simulate import simulate_ecg
from ecgstudio.training.restore import simulated_reading, train_restorer


def _records(count: int) -> np.ndarray:
    return np.stack(
        [simulate_ecg(np.random.default_rng(k), duration_s=10.0, fs=500.0).mv.astype(np.float32) for k in range(count)]
    )


def test_a_simulated_reading_shows_each_lead_in_windows_close_to_the_record() -> None:
    truth = _records(1)[0]
    shares, errors = [], []
    for seed in range(40):
        read = simulated_reading(truth, np.random.default_rng(seed))
        assert read.shape == truth.shape
        seen = np.isfinite(read)
        shares.append(seen.mean())
        errors.append(np.median(np.abs(read[seen] - truth[seen])))
    assert 0.15 < np.mean(shares) < 0.6  # most layouts show a quarter to a half of each lead
    assert np.median(errors) < 0.05  # mV: a reading, not noise
    assert min(shares) < max(shares)  # layouts differ


def test_training_checkpoints_resumes_and_saves_weights_that_load(tmp_path) -> None:
    records = _records(3)
    out = tmp_path / "restorer.pt"

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_restorer(out, records, steps=4, batch=2, work_dir=tmp_path, checkpoint_every=2, progress=interrupt)
    assert (tmp_path / "restorer-checkpoint.pt").is_file() and not out.exists()
    steps: list[int] = []
    card = train_restorer(
        out, records, held_out=records[:1], steps=4, batch=2, work_dir=tmp_path, progress=lambda s, _: steps.append(s)
    )
    assert steps == [3, 4]  # resumed after the checkpoint of step 2
    assert card.training["steps"] == 4 and "held_out_unread_snr_db" in card.metrics
    net, loaded = load_restorer(out)
    assert loaded.sha256 == card.sha256 and not net.training


def test_the_command_line_trains_on_a_folder_of_records(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "records"
    for k, mv in enumerate(_records(3)):
        write_wfdb(Signals(mv.astype(np.float64), 500.0, LEAD_NAMES), folder, f"rec{k}")
    out = tmp_path / "r.pt"
    code = main(
        [
            "train-restorer",
            "--records",
            str(folder),
            "--steps",
            "2",
            "--work-dir",
            str(tmp_path),
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0 and out.is_file()
    assert "saved restoration network" in capsys.readouterr().out


def test_the_loss_counts_what_was_not_read_double_and_ignores_samples_without_truth() -> None:
    import torch

    from ecgstudio.training.restore import restoration_loss

    truth = torch.from_numpy(_records(1)[0].T[None].copy())
    read = torch.zeros_like(truth, dtype=torch.bool)
    read[..., :2500] = True
    assert restoration_loss(truth, truth, read) == 0
    off_read, off_unread = truth.clone(), truth.clone()
    off_read[..., :2500] += 0.1
    off_unread[..., 2500:] += 0.1
    assert restoration_loss(off_unread, truth, read) == pytest.approx(2 * restoration_loss(off_read, truth, read))
    truth[..., 4000:] = float("nan")
    assert torch.isfinite(restoration_loss(off_unread, truth, read))
