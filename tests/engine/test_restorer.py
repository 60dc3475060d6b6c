"""A restoration network in use: what it fills and reconstructs, what it leaves alone and how each
sample is labelled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgstudio.errors import ModelError
from ecgstudio.model.restorenet import RestoreNet, RestorerCard, load_restorer
from ecgstudio.model.weights import save_model
from ecgstudio.paper import LEAD_NAMES, get_layout
from ecgstudio.restore import (
    FILLED,
    MEASURED,
    NONE,
    RECONSTRUCTED,
    REFINED,
    Restorer,
    complete_limb_leads,
    placed_beats,
    restore,
)
from ecgstudio.results import Signals
from ecgstudio.synth.simulate import simulate_ecg


def _plotted(truth: Signals, layout: str) -> tuple[Signals, dict[str, list[tuple[float, float]]]]:
    """The record as a page of ``layout`` shows it, and the windows it plots each lead in."""
    mv = np.full_like(truth.mv, np.nan)
    t = truth.time_s()
    windows: dict[str, list[tuple[float, float]]] = {}
    for j, lead in enumerate(truth.lead_names):
        for cell in get_layout(layout).cells_for(lead):
            inside = (t >= cell.t_start_s) & (t < cell.t_end_s)
            mv[inside, j] = truth.mv[inside, j]
            windows.setdefault(lead, []).append((cell.t_start_s, cell.t_end_s))
    return Signals(mv, truth.fs, truth.lead_names), windows


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Restorer:
    """A restorer whose network has never been trained: it returns the placed beats."""
    path = tmp_path_factory.mktemp("restorer") / "restorer.pt"
    torch.manual_seed(0)
    save_model(RestoreNet(), path, RestorerCard(version="untrained"))
    return Restorer(path)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Restorer:
    """A restorer whose network changes what it is given (random output weights)."""
    path = tmp_path_factory.mktemp("restorer") / "perturbed.pt"
    torch.manual_seed(1)
    net = RestoreNet()
    torch.nn.init.normal_(net.out.weight, std=0.05)
    save_model(net, path, RestorerCard(version="perturbed"))
    return Restorer(path)


def test_an_untrained_network_gives_back_the_placed_beats(untrained: Restorer) -> None:
    truth = simulate_ecg(np.random.default_rng(1), duration_s=10.0, fs=500.0, heart_rate_bpm=72)
    seen, _ = _plotted(truth, "3x4+1")
    placed = placed_beats(seen)
    estimate = untrained.estimate(seen, placed)
    known = np.isfinite(placed)
    np.testing.assert_allclose(estimate[known], placed[known], atol=1e-5)


def test_samples_say_whether_they_were_read_filled_or_reconstructed(untrained: Restorer) -> None:
    truth = simulate_ecg(np.random.default_rng(2), duration_s=10.0, fs=500.0, heart_rate_bpm=80)
    seen, windows = _plotted(truth, "3x4+1")
    v1 = LEAD_NAMES.index("V1")
    hole = slice(2750, 3000)  # a stain inside V1's window (5-7.5 s)
    mv = seen.mv.copy()
    mv[hole, v1] = np.nan
    seen = Signals(mv, seen.fs, seen.lead_names)
    done = restore(seen, windows=windows, restorer=untrained)
    measured = np.isfinite(seen.mv)
    np.testing.assert_array_equal(done.signals.mv[measured], seen.mv[measured])  # read samples untouched
    assert (done.source[measured] == MEASURED).all()
    assert (done.source[hole, v1] == FILLED).all()
    assert (done.source[:2500, v1] == RECONSTRUCTED).all() and (done.source[3750:, v1] == RECONSTRUCTED).all()
    assert np.isfinite(done.signals.mv).all()
    assert [kind for kind, *_ in done.intervals("V1")] == ["reconstructed", "measured", "filled", "measured"] + [
        "reconstructed"
    ]
    # The exact relations stay exact wherever two limb leads were read.
    exact = complete_limb_leads(seen).signals.mv
    unread_exact = np.isfinite(exact) & ~measured
    np.testing.assert_array_equal(done.signals.mv[unread_exact], exact[unread_exact])


def test_refine_replaces_what_was_read_only_when_asked(network: Restorer) -> None:
    truth = simulate_ecg(np.random.default_rng(3), duration_s=10.0, fs=500.0)
    seen, windows = _plotted(truth, "3x4+1")
    measured = np.isfinite(seen.mv)
    plain = restore(seen, windows=windows, restorer=network)
    refined = restore(seen, windows=windows, restorer=network, refine=True)
    np.testing.assert_array_equal(plain.signals.mv[measured], seen.mv[measured])
    assert (refined.source[measured] == REFINED).all()
    assert not np.array_equal(refined.signals.mv[measured], seen.mv[measured])
    np.testing.assert_array_equal(refined.signals.mv[~measured], plain.signals.mv[~measured])


def test_what_cannot_honestly_be_completed_stays_empty(network: Restorer) -> None:
    truth = simulate_ecg(np.random.default_rng(4), duration_s=10.0, fs=500.0)
    seen, windows = _plotted(truth, "3x4+1")
    mv = seen.mv.copy()
    mv[:, LEAD_NAMES.index("V2")] = np.nan  # a lead never read
    done = restore(Signals(mv, seen.fs, seen.lead_names), windows=windows, restorer=network)
    assert (done.source[:, LEAD_NAMES.index("V2")] == NONE).all()
    assert np.isnan(done.signals.lead("V2")).all()
    # One lead read: nothing to go on but its own samples.
    only_ii = np.full_like(truth.mv, np.nan)
    only_ii[:, 1] = truth.mv[:, 1]
    alone = restore(Signals(only_ii, truth.fs, truth.lead_names), restorer=network)
    np.testing.assert_array_equal(alone.signals.mv, only_ii)
    # A record under 2 s: the exact relations only.
    short = Signals(seen.mv[:900], seen.fs, seen.lead_names)
    done = restore(short, restorer=network)
    np.testing.assert_array_equal(done.signals.mv, complete_limb_leads(short).signals.mv)


def test_a_record_of_another_rate_and_length_is_restored_on_its_own_samples(network: Restorer) -> None:
    truth = simulate_ecg(np.random.default_rng(5), duration_s=12.0, fs=250.0)
    seen, windows = _plotted(truth, "3x4+1")
    done = restore(seen, windows=windows, restorer=network)
    assert done.signals.mv.shape == truth.mv.shape and done.signals.fs == 250.0
    assert np.isfinite(done.signals.mv[: int(10 * 250)]).all()


def test_broken_weights_are_refused_with_a_message(tmp_path) -> None:
    path = tmp_path / "restorer.pt"
    save_model(RestoreNet(), path, RestorerCard(version="x"))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="does not match its card"):
        load_restorer(path)
    with pytest.raises(ModelError, match="not found"):
        load_restorer(tmp_path / "missing.pt")
