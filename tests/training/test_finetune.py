"""The local fine-tune: samples from label files, the split, a tiny run, the model registry, bad input."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ecgstudio.training.finetune as ft
from ecgstudio.errors import EcgStudioError
from ecgstudio.labels import ReviewStatus, load_labels, save_labels
from ecgstudio.model import registry
from ecgstudio.model.net import NetConfig, TraceNet
from ecgstudio.model.weights import DEFAULT_MODEL, ModelCard, load_model, save_model
from ecgstudio.synth.batch import write_page
from ecgstudio.synth.render import PageStyle, render_page
from ecgstudio.training.finetune import (
    FinetuneCancelled,
    FinetuneConfig,
    FinetuneError,
    build_sample,
    finetune,
    read_label_source,
    split_sources,
)

TINY = NetConfig(widths=(4, 8, 8))
QUICK = FinetuneConfig(
    steps=3,
    batch_size=2,
    crop=32,
    warmup_steps=1,
    synthetic_pages=1,
    new_synthetic_every=100,
    device="cpu",
    val_fraction=0.34,
)


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory) -> Path:
    """Three synthetic pages written with their ground truth as reviewed label files."""
    folder = tmp_path_factory.mktemp("labels")
    for k in range(3):
        page = render_page(style=PageStyle(dpi=100, layout="3x4+1"), seed=10 + k)
        write_page(page, folder, f"page_{k}")
    return folder


@pytest.fixture()
def labels(label_dir, tmp_path) -> Path:
    """A private copy of the label folder (tests may damage it), its labels pointing at its images."""
    folder = Path(shutil.copytree(label_dir, tmp_path / "labels"))
    for path in folder.glob("*.labels.h5"):
        record = load_labels(path)
        image = replace(record.image, path=str(folder / Path(record.image.path).name))
        save_labels(replace(record, image=image), path)
    return folder


@pytest.fixture()
def base(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "base" / "tracenet.pt"
    save_model(TraceNet(TINY), path, ModelCard(version="tiny-base", net=TINY))
    return path


@pytest.fixture()
def scores(monkeypatch):
    """Replace the validation score by given values (before, after), for speed and to force outcomes."""
    values: list[float] = []

    def fake(model, samples, *, device="cpu", should_stop=None):
        assert samples, "validation needs held-out pages"
        return values.pop(0)

    monkeypatch.setattr(ft, "labeled_validation_snr", fake)
    return values


_SAMPLES: dict = {}


@pytest.fixture()
def fast_samples(monkeypatch) -> None:
    """Build each page's sample and one synthetic page once per session (the slow parts of a tiny run)."""
    build = ft.build_sample

    def cached(source, *, text_weight_without_mask=0.1):
        key = (source.image_sha256, text_weight_without_mask)
        if key not in _SAMPLES:
            _SAMPLES[key] = build(source, text_weight_without_mask=text_weight_without_mask)
        return replace(_SAMPLES[key], source=source)

    monkeypatch.setattr(ft, "build_sample", cached)
    if "synthetic" not in _SAMPLES:
        _SAMPLES["synthetic"] = ft.render_training_page(np.random.default_rng(0), ft.RecordPool())
    monkeypatch.setattr(ft, "render_training_page", lambda rng, records, severity: _SAMPLES["synthetic"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -------------------------------------------------------------------------------------------- samples


def test_sample_targets_lie_on_the_trace_ink(labels) -> None:
    sample = build_sample(read_label_source(labels / "page_0.labels.h5"))
    image, targets = sample.image, sample.targets()
    assert targets.shape == (2,) + image.shape[:2] and targets.dtype == np.float32
    # The canonical frame: about 6 px/mm, so a letter page is about 1676 x 1295 px.
    assert abs(image.shape[1] - 279.4 * 6) < 0.03 * 279.4 * 6
    dark = image.min(axis=2)
    ridge = targets[0] > 0.9
    assert ridge.sum() > 5000
    assert np.median(dark[ridge]) < 100 < np.median(dark)  # the ridge runs on the dark trace pixels
    assert (dark[ridge] < 128).mean() > 0.9
    # Text target from the label's mask, on dark pixels only, full weight.
    assert sample.text_weight == 1.0 and targets[1].any()
    assert np.median(dark[targets[1] > 0]) < 160
    assert set(sample.windows) == set(sample.truth.lead_names)


def test_sample_is_turned_the_way_its_labels_run(tmp_path) -> None:
    """A 12x1 page whose beats line up down the page looks sideways to the ink alone; its labelled
    traces run across the page, and the sample is built that way up."""
    page = render_page(style=PageStyle(layout="12x1", dpi=150, grid_color="pink"), seed=4)
    write_page(page, tmp_path, "twelve")
    sample = build_sample(read_label_source(tmp_path / "twelve.labels.h5"))
    height, width = sample.image.shape[:2]
    assert width > 1.2 * height  # a landscape letter page, as printed
    ridge = sample.targets()[0] > 0.9
    assert np.median(sample.image.min(axis=2)[ridge]) < 100


def test_sample_without_masks_has_a_low_weight_empty_text_target(labels) -> None:
    path = labels / "page_1.labels.h5"
    record = load_labels(path)
    save_labels(replace(record, digitization=replace(record.digitization, masks=None)), path)
    sample = build_sample(read_label_source(path), text_weight_without_mask=0.1)
    assert not sample.text.any() and sample.text_weight == 0.1
    assert (sample.trace > 127).any()


def test_split_is_deterministic_and_keeps_validation_aside(labels) -> None:
    sources = [read_label_source(p) for p in sorted(labels.glob("*.labels.h5"))]
    train, val = split_sources(sources, val_fraction=0.2, seed=3)
    assert len(val) == 1 and len(train) == 2
    assert {id(s) for s in train}.isdisjoint(id(s) for s in val)
    again_train, again_val = split_sources(sources[::-1], val_fraction=0.2, seed=3)
    assert [s.image_sha256 for s in again_val] == [s.image_sha256 for s in val]
    assert {s.image_sha256 for s in again_train} == {s.image_sha256 for s in train}
    _, most = split_sources(sources, val_fraction=0.9)
    assert len(most) == 2  # at least one page is always left to train on
    with pytest.raises(FinetuneError, match="at least 2"):
        split_sources(sources[:1])


# -------------------------------------------------------------------------------------------- runs


def test_finetune_runs_reports_and_saves_a_version(labels, base, tmp_path) -> None:
    shipped = _sha(DEFAULT_MODEL)
    seen = []
    result = finetune(labels, base=base, config=QUICK, data_dir=tmp_path / "data", name="mine", progress=seen.append)
    assert result.steps == 3 and len(result.val_labels) == 1 and len(result.train_labels) == 2
    steps = [p.step for p in seen if p.stage == "training"]
    assert steps == [1, 2, 3]
    assert seen[-1].stage == "done" and seen[-1].fraction == 1.0
    assert all(0.0 <= p.fraction <= 1.0 for p in seen)
    assert [p.loss for p in seen if p.stage == "training"][-1] > 0
    assert seen[-1].val_snr_before_db is not None and seen[-1].val_snr_after_db is not None

    _model, card = load_model(tmp_path / "data" / "models" / "mine" / "tracenet.pt")
    assert card.version == "mine" and card.net == TINY
    base_card = load_model(base)[1]
    assert base_card.sha256 in card.base_model and card.training["base"]["version"] == "tiny-base"
    assert card.training["steps_done"] == 3
    used = {Path(row["label"]).name: row for row in card.training["labels"]}
    assert set(used) == {f"page_{k}.labels.h5" for k in range(3)}
    assert all(len(row["label_sha256"]) == 64 and len(row["image_sha256"]) == 64 for row in used.values())
    assert sum(row["split"] == "validation" for row in used.values()) == 1
    assert card.metrics["val_snr_db_before"] == result.val_snr_before_db
    assert card.metrics["val_snr_db_after"] == result.val_snr_after_db
    assert _sha(DEFAULT_MODEL) == shipped  # the shipped model is never written


@pytest.mark.parametrize(("before", "after", "activated"), [(1.0, 2.5, True), (2.0, 1.5, False), (2.0, 2.0, False)])
def test_new_version_is_activated_only_when_it_validates_better(
    labels, base, tmp_path, scores, fast_samples, before, after, activated
) -> None:
    scores += [before, after]
    data = tmp_path / "data"
    result = finetune(labels, base=base, config=QUICK, data_dir=data, name="candidate")
    assert result.activated is activated
    assert (registry.active_version(data_dir=data).name == "candidate") is activated
    assert "candidate" in [v.name for v in registry.list_versions(data_dir=data)]  # saved either way
    assert result.version.card.metrics["improved"] is activated


def test_cancel_saves_nothing_and_keeps_the_active_model(labels, base, tmp_path, scores, fast_samples) -> None:
    data = tmp_path / "data"
    scores += [1.0, 9.0]
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 6  # during training

    with pytest.raises(FinetuneCancelled, match="nothing was saved"):
        finetune(labels, base=base, config=replace(QUICK, steps=50), data_dir=data, name="cancelled", should_stop=stop)
    assert registry.active_version(data_dir=data).name == registry.SHIPPED
    assert [v.name for v in registry.list_versions(data_dir=data)] == [registry.SHIPPED]
    assert not (data / "models" / "cancelled").exists()


# -------------------------------------------------------------------------------------------- registry


def _version(data: Path, name: str, seed: int) -> None:
    torch.manual_seed(seed)
    registry.save_version(TraceNet(TINY), ModelCard(version=name, net=TINY), name, data_dir=data)


def test_list_switch_and_rollback(tmp_path) -> None:
    data = tmp_path / "data"
    assert registry.active_model_path(data_dir=data) == DEFAULT_MODEL
    with pytest.raises(registry.ModelRegistryError, match="nothing to roll back"):
        registry.rollback(data_dir=data)
    _version(data, "a", 1)
    _version(data, "b", 2)
    names = [(v.name, v.active) for v in registry.list_versions(data_dir=data)]
    assert names == [("shipped", True), ("a", False), ("b", False)]

    registry.activate("a", data_dir=data)
    registry.activate("b", data_dir=data)
    assert registry.active_model_path(data_dir=data) == data / "models" / "b" / "tracenet.pt"
    assert load_model(registry.active_model_path(data_dir=data))[1].version == "b"
    assert registry.rollback(data_dir=data).name == "a"
    assert registry.rollback(data_dir=data).name == "shipped"
    assert registry.active_model_path(data_dir=data) == DEFAULT_MODEL
    registry.activate("shipped", data_dir=data)  # already active: no change
    assert registry.resolve_model("b", data_dir=data) == data / "models" / "b" / "tracenet.pt"

    with pytest.raises(registry.ModelRegistryError, match="no model version 'c'"):
        registry.activate("c", data_dir=data)
    with pytest.raises(registry.ModelRegistryError, match="not a valid model version name"):
        registry.activate("../x", data_dir=data)


def test_a_broken_active_model_falls_back_to_the_shipped_one(tmp_path) -> None:
    data = tmp_path / "data"
    _version(data, "a", 1)
    registry.activate("a", data_dir=data)
    weights = data / "models" / "a" / "tracenet.pt"
    weights.write_bytes(weights.read_bytes() + b"x")
    assert registry.active_model_path(data_dir=data) == DEFAULT_MODEL
    with pytest.raises(registry.ModelRegistryError, match="do not match their card"):
        registry.activate("a", data_dir=data)
    (data / "models" / registry.ACTIVE_FILE).write_text("{not json")
    assert registry.active_model_path(data_dir=data) == DEFAULT_MODEL


def _forge(data: Path, name: str, weights: bytes, **card_changes) -> None:
    """A version whose card matches its weights' sha256 (as a copied or hand-made folder's would)."""
    _version(data, name, 3)
    folder = data / "models" / name
    (folder / "tracenet.pt").write_bytes(weights)
    card = json.loads((folder / "tracenet.json").read_text())
    card.update(sha256=hashlib.sha256(weights).hexdigest(), **card_changes)
    (folder / "tracenet.json").write_text(json.dumps(card))


def test_weights_that_do_not_load_are_never_activated(tmp_path) -> None:
    data = tmp_path / "data"
    _forge(data, "random", np.random.default_rng(0).bytes(4096))
    with pytest.raises(registry.ModelRegistryError, match="'random' cannot be loaded: .*not a weights file"):
        registry.activate("random", data_dir=data)
    assert registry.active_version(data_dir=data).name == registry.SHIPPED
    # activated behind the registry's back (an older ECG Studio, a hand edit): digitizing falls back
    (data / "models" / registry.ACTIVE_FILE).write_text(
        json.dumps({"format": registry._POINTER_FORMAT, "active": "random", "history": ["shipped"]})
    )
    assert registry.active_model_path(data_dir=data) == DEFAULT_MODEL


def test_a_card_declaring_a_giant_net_is_refused_before_building_it(tmp_path) -> None:
    data = tmp_path / "data"
    _version(data, "ok", 1)
    weights = (data / "models" / "ok" / "tracenet.pt").read_bytes()
    _forge(data, "giant", weights, net={"widths": [100_000] * 5, "in_channels": 3, "out_channels": 2})
    with pytest.raises(registry.ModelRegistryError, match="widths .* are not 1 to 8 levels"):
        registry.activate("giant", data_dir=data)


# -------------------------------------------------------------------------------------------- bad input


def test_empty_selection(tmp_path, base) -> None:
    (tmp_path / "empty").mkdir()
    for selection in ([], tmp_path / "empty"):
        with pytest.raises(FinetuneError, match="no label files selected"):
            finetune(selection, base=base, config=QUICK, data_dir=tmp_path / "data")
    with pytest.raises(FinetuneError, match="does not exist"):
        finetune([tmp_path / "nope.labels.h5"], base=base, config=QUICK, data_dir=tmp_path / "data")


def test_labels_of_another_schema_version(labels, base, tmp_path) -> None:
    with h5py.File(labels / "page_2.labels.h5", "r+") as f:
        f.attrs["schema_version"] = np.int64(99)
    with pytest.raises(FinetuneError, match=r"page_2.labels.h5.*newer ECG Studio \(schema 99\).*update"):
        finetune(labels, base=base, config=QUICK, data_dir=tmp_path / "data")


def test_missing_or_changed_image(labels, base, tmp_path, scores, fast_samples) -> None:
    data = tmp_path / "data"
    (labels / "page_1.png").unlink()
    with pytest.raises(FinetuneError, match=r"page_1.png.*missing.*put it back"):
        finetune(labels, base=base, config=QUICK, data_dir=data)
    shutil.copy(labels / "page_0.png", labels / "page_1.png")  # another image under the same name
    with pytest.raises(FinetuneError, match=r"changed since it was labelled.*restore the original"):
        finetune(labels, base=base, config=QUICK, data_dir=data)
    # Leaving bad pages out on request: two pages remain, the bad one is reported.
    scores += [1.0, 0.0]
    result = finetune(labels, base=base, config=replace(QUICK, skip_bad_labels=True), data_dir=data)
    assert [p.name for p, _ in result.skipped] == ["page_1.labels.h5"]
    assert registry.active_version(data_dir=data).name == registry.SHIPPED


def test_unreviewed_pages_are_left_out(labels, base, tmp_path) -> None:
    for k in (0, 1):
        path = labels / f"page_{k}.labels.h5"
        record = load_labels(path)
        save_labels(replace(record, review=replace(record.review, status=ReviewStatus.PROPOSED)), path)
    with pytest.raises(FinetuneError, match="at least 2 reviewed pages"):
        finetune(labels, base=base, config=QUICK, data_dir=tmp_path / "data")


def test_full_disk_keeps_the_active_model(labels, base, tmp_path, scores, fast_samples, monkeypatch) -> None:
    import ecgstudio.model.weights as weights

    data = tmp_path / "data"
    _version(data, "good", 1)
    registry.activate("good", data_dir=data)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = weights.write_bytes_atomic
    monkeypatch.setattr(weights, "write_bytes_atomic", full)
    scores += [1.0, 5.0]
    with pytest.raises(FinetuneError, match="not enough disk space.*free some space") as info:
        finetune(labels, base=base, config=QUICK, data_dir=data, name="new")
    assert isinstance(info.value, EcgStudioError)
    assert not (data / "models" / "new").exists()
    assert registry.active_version(data_dir=data).name == "good"
    load_model(registry.active_model_path(data_dir=data))  # still loads

    # The pointer cannot be written either: the version is saved, the old one stays active.
    monkeypatch.setattr(weights, "write_bytes_atomic", writer)
    monkeypatch.setattr(registry, "write_text_atomic", full)
    scores += [1.0, 5.0]
    with pytest.raises(FinetuneError, match="saved but could not be activated.*free some disk space"):
        finetune(labels, base=base, config=QUICK, data_dir=data, name="newer")
    assert registry.active_version(data_dir=data).name == "good"


def test_bad_base_model_and_taken_name(labels, base, tmp_path) -> None:
    data = tmp_path / "data"
    with pytest.raises(FinetuneError, match="cannot start from model"):
        finetune(labels, base=tmp_path / "missing.pt", config=QUICK, data_dir=data)
    _version(data, "taken", 1)
    with pytest.raises(FinetuneError, match="already exists"):
        finetune(labels, base=base, config=QUICK, data_dir=data, name="taken")
