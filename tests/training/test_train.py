"""Training runs, checkpoints, resumes and saves weights that load back; the network's shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgstudio.config import SegmentationConfig
from ecgstudio.model.infer import predict_maps
from ecgstudio.model.net import NetConfig, TraceNet
from ecgstudio.model.weights import load_model
from ecgstudio.results import Trace
from ecgstudio.synth.render import PageStyle, render_page
from ecgstudio.training.data import page_targets, random_crops, trace_heatmap
from ecgstudio.training.train import TrainConfig, trace_loss, train

TINY = NetConfig(widths=(4, 8, 8))


def test_net_keeps_the_input_size() -> None:
    net = TraceNet(TINY).eval()
    image = np.random.default_rng(0).integers(0, 255, (101, 203, 3), dtype=np.uint8)
    maps = predict_maps(net, image)
    assert maps.shape == (2, 101, 203)
    assert maps.min() >= 0 and maps.max() <= 1


def test_tiled_inference_matches_whole_page() -> None:
    torch.manual_seed(0)
    net = TraceNet(TINY).eval()
    image = np.random.default_rng(1).integers(0, 255, (300, 420, 3), dtype=np.uint8)
    whole = predict_maps(net, image)
    small_tiles = SegmentationConfig(tile_px=160, overlap_px=32)
    tiled = predict_maps(net, image, config=small_tiles)
    # Away from tile seams the receptive field is the same; near them it is close.
    assert np.abs(whole - tiled).mean() < 0.02
    band = image[:80, :300]  # wider than a tile but no more pixels than one: one piece, no seams
    in_tiles = predict_maps(net, band, config=small_tiles)
    np.testing.assert_array_equal(in_tiles, predict_maps(net, band))


@pytest.mark.parametrize("n", [2048, 2049, 2200, 3000, 3900, 5000, 9000])
def test_tiles_are_few_equal_and_overlap(n: int) -> None:
    import ecgstudio.model.infer as infer

    tile, overlap = SegmentationConfig.tile_px, SegmentationConfig.overlap_px
    starts, size = infer._tiles(n, tile, overlap)
    assert size <= tile and starts[0] == 0 and starts[-1] + size == n
    assert all(b - a <= size - 2 * overlap for a, b in zip(starts, starts[1:]))
    fewer = len(starts) - 1
    assert fewer == 0 or fewer * tile - (fewer - 1) * 2 * overlap < n  # one tile less would not do


def test_heatmap_ridge_peaks_on_the_polyline() -> None:
    xy = np.column_stack([np.linspace(10, 90, 81), np.full(81, 30.0)])
    ridge = trace_heatmap([Trace("I", xy)], (60, 100))
    assert ridge[30, 50] > 0.95 and ridge[33, 50] < 0.05
    assert ridge.max() <= 1.0


def test_targets_and_crops() -> None:
    page = render_page(style=PageStyle(dpi=150), seed=1)
    targets = page_targets(page)
    assert targets.shape == (2,) + page.image.shape[:2]
    images, crops = random_crops(page.image, targets, np.random.default_rng(0), size=64, count=5)
    assert images.shape == (5, 3, 64, 64) and crops.shape == (5, 2, 64, 64)
    assert images.dtype == np.float32 and images.max() <= 1.0
    assert (crops[:, 0] > 0.5).any()  # most crops are centred on traces


def test_loss_prefers_the_truth() -> None:
    target = torch.zeros(1, 2, 32, 32)
    target[0, 0, 16, :] = 1.0
    good = torch.where(target > 0.5, 8.0, -8.0)
    bad = -good
    assert trace_loss(good, target) < trace_loss(bad, target)


def test_train_checkpoints_resumes_and_saves(tmp_path) -> None:
    config = TrainConfig(
        steps=3,
        batch_size=2,
        crop=64,
        buffer_pages=2,
        page_every=3,
        val_pages=1,
        val_every=3,
        checkpoint_every=2,
        warmup_steps=1,
        net=TINY,
    )
    seen = []
    model, card = train(
        config, tmp_path, progress=lambda step, total, m: seen.append(step), should_stop=lambda: len(seen) >= 2
    )
    assert seen == [1, 2]  # stopped early on request
    assert (tmp_path / "checkpoint.pt").is_file()
    model, card = train(config, tmp_path, progress=lambda step, total, m: seen.append(step))
    assert seen == [1, 2, 3]  # resumed at step 3
    assert card.training["steps_done"] == 3
    assert "val_snr_db" in card.metrics and "val_loss" in card.metrics
    loaded, loaded_card = load_model(tmp_path / "tracenet.pt")
    assert loaded_card.sha256 == card.sha256 and loaded_card.net == TINY
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a.cpu(), b)


def test_fused_network_gives_the_same_maps() -> None:
    from ecgstudio.model.net import fused_for_inference

    torch.manual_seed(3)
    net = TraceNet(TINY)
    # Non-trivial batch-norm statistics, as after training.
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 64, 64) * 2)
    net.eval()
    fused = fused_for_inference(net).to(memory_format=torch.channels_last)
    image = np.random.default_rng(2).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    exact = predict_maps(net, image, exact=True)
    np.testing.assert_allclose(predict_maps(fused, image, exact=True), exact, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    # the default (bfloat16 where the processor has it) stays close to float32
    np.testing.assert_allclose(predict_maps(fused, image), exact, atol=0.05)
