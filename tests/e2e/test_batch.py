"""Batch digitizing under unlucky inputs: every input gets its own record, nothing already in the
output folder is replaced unasked, and no file name or failure in one page ends the batch.

The digitizer here answers with the rendered page's ground truth (the engine itself is tested in
test_pipeline.py), so the batch's own behaviour is what is checked, fast."""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecgstudio import batch
from ecgstudio.batch import OutputExistsError, digitize_paths, record_names
from ecgstudio.cli import main
from ecgstudio.io.images import file_sha256
from ecgstudio.io.signals import read_signals
from ecgstudio.model.weights import ModelCard
from ecgstudio.synth.render import PageStyle, render_page

PAGE = render_page(style=PageStyle(layout="3x4+1", dpi=60), seed=2)


class TruthDigitizer:
    """Answers every page with the rendered page's ground truth; a 120x120 px page raises an
    unexpected error, and every page logs a warning, as the engine can."""

    model_card = ModelCard(version="truth-1")

    def __init__(self, *args, **kwargs) -> None:
        self.calls = 0

    def digitize(self, image, options=None, *, progress=None):
        self.calls += 1
        if image.shape[:2] == (120, 120):
            raise RuntimeError("something nobody expected")
        logging.getLogger("ecgstudio.layout").warning("assuming 10 mm/mV")
        return PAGE.to_digitization()


def _png(path: Path, image: np.ndarray = PAGE.image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG" if path.suffix.lower() != ".jpg" else "JPEG")
    return path


def test_naming_rule_gives_distinct_readable_names(tmp_path: Path) -> None:
    files = [
        tmp_path / "dup.png",
        tmp_path / "dup.jpg",
        tmp_path / "a" / "x.png",
        tmp_path / "b" / "x.png",
        tmp_path / "scan 1.png",
        tmp_path / "scan_1.png",
        tmp_path / "心电图.png",
        tmp_path / "Électro.png",
        tmp_path / "y.pdf",
        tmp_path / "y_p1.png",
        tmp_path / "plain.png",
    ]
    names = record_names(files)
    assert len({n.lower() for n in names.values()}) == len(files)
    assert names[tmp_path / "dup.png"] == "dup_png" and names[tmp_path / "dup.jpg"] == "dup_jpg"
    assert names[tmp_path / "a" / "x.png"] == "a_x" and names[tmp_path / "b" / "x.png"] == "b_x"
    assert names[tmp_path / "scan_1.png"] == "scan_1" and names[tmp_path / "scan 1.png"].startswith("scan_1-")
    assert names[tmp_path / "心电图.png"].startswith("page-")
    assert names[tmp_path / "Électro.png"].startswith("Electro-")
    assert names[tmp_path / "y.pdf"] == "y" and names[tmp_path / "y_p1.png"] == "y_p1_png"
    assert names[tmp_path / "plain.png"] == "plain"
    assert record_names(list(reversed(files))) == names  # the same inputs, the same names


def test_six_inputs_give_six_records_with_overlays_beside_them(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    for rel in ("dup.png", "dup.jpg", "a/x.png", "b/x.png", "scan 1.png", "scan_1.png"):
        _png(inputs / rel)
    out = tmp_path / "out"
    report = digitize_paths([inputs], out, formats=["wfdb", "json"], overlay=True, digitizer=TruthDigitizer())
    assert report.ok and len(report.written) == 6
    for name in report.written:
        assert (out / f"{name}.hea").is_file() and (out / f"{name}_overlay.png").is_file()
        provenance = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["provenance"]
        source = Path(provenance["source_image"])
        assert provenance["source_sha256"] == file_sha256(source)
        header = (out / f"{name}.hea").read_text(encoding="utf-8")
        assert f"source: {source.name} sha256:{provenance['source_sha256']}" in header


def test_files_already_in_the_output_folder_are_kept_unless_overwrite(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "dup.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "dup.csv").write_text("the user's own table\n")
    with pytest.raises(OutputExistsError, match=r"already holds dup.csv.*--overwrite"):
        digitize_paths([tmp_path / "in"], out, formats=["wfdb", "csv"], digitizer=TruthDigitizer())
    assert sorted(p.name for p in out.iterdir()) == ["dup.csv"]  # stopped before writing anything
    report = digitize_paths([tmp_path / "in"], out, formats=["csv"], overwrite=True, digitizer=TruthDigitizer())
    assert report.ok and (out / "dup.csv").read_text() != "the user's own table\n"
    # An EDF record's stretch files count too, and a rewritten record drops its old stretches.
    (out / "dup_1.00-3.00s.edf").write_bytes(b"a stretch of an earlier run")
    with pytest.raises(OutputExistsError, match=r"dup_1.00-3.00s.edf"):
        digitize_paths([tmp_path / "in"], out, formats=["edf"], digitizer=TruthDigitizer())
    report = digitize_paths([tmp_path / "in"], out, formats=["edf"], overwrite=True, digitizer=TruthDigitizer())
    assert report.ok and not (out / "dup_1.00-3.00s.edf").exists() and (out / "dup.edf").is_file()


def test_any_file_name_works_and_one_bad_page_does_not_end_the_batch(
    tmp_path: Path, capsys, caplog, monkeypatch
) -> None:
    inputs = tmp_path / "in"
    _png(inputs / "心电图.png")
    odd = os.fsdecode(b"scan\xff\xfe.png")  # not UTF-8: a name from another system
    _png(inputs / odd)
    _png(inputs / "boom.png", np.zeros((120, 120, 3), np.uint8))
    _png(inputs / "zz_last.png")
    monkeypatch.setattr(batch, "Digitizer", TruthDigitizer)
    out = tmp_path / "out"
    code = main(["digitize", str(inputs), "--out", str(out), "--format", "wfdb,csv,json", "--workers", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert "digitized 3 page(s) of 4 file(s)" in captured.out and "1 failed" in captured.out
    assert "boom.png: unexpected error (RuntimeError: something nobody expected)" in captured.err
    assert "Traceback" not in captured.err
    assert "zz_last.png: assuming 10 mm/mV" in caplog.text  # warnings name their file
    records = sorted(p.stem for p in out.glob("*.hea"))
    assert len(records) == 3 and "zz_last" in records
    sidecars = [json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*.json")]
    assert any("\\xff\\xfe" in s["provenance"]["source_image"] for s in sidecars)
    for record in records:
        assert read_signals(out / f"{record}.hea").n_samples > 0


def test_a_page_that_cannot_be_written_leaves_none_of_its_files(tmp_path: Path, monkeypatch) -> None:
    _png(tmp_path / "in" / "a.png")
    from ecgstudio.io import writers

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "write_csv", full_disk)
    out = tmp_path / "out"
    report = digitize_paths([tmp_path / "in"], out, formats=["wfdb", "csv"], digitizer=TruthDigitizer())
    assert list(report.failed) == ["a"] and "No space left" in report.failed["a"]
    records = [p.name for p in out.iterdir() if not p.name.startswith((".", "ecgstudio-"))]
    assert records == []  # no .hea without its .csv


class CountingDigitizer(TruthDigitizer):
    """Counts the pages it digitizes; raises KeyboardInterrupt (Ctrl-C) at page ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.stop_at = stop_at

    def digitize(self, image, options=None, *, progress=None):
        if self.stop_at is not None and self.calls + 1 == self.stop_at:
            raise KeyboardInterrupt
        return super().digitize(image, options, progress=progress)


def _inputs(folder: Path, n: int) -> Path:
    for k in range(n):
        _png(folder / f"page{k}.png")
    return folder


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path: Path) -> None:
    inputs, out = _inputs(tmp_path / "in", 3), tmp_path / "out"
    first = CountingDigitizer()
    report = digitize_paths([inputs], out, formats=["wfdb", "json"], digitizer=first)
    assert first.calls == 3 and report.ok and report.summary.is_file()
    again = CountingDigitizer()
    report = digitize_paths([inputs], out, formats=["wfdb", "json"], digitizer=again)  # its own files: no clash
    assert again.calls == 0 and report.skipped == 3 and not report.written
    _png(inputs / "page1.png", np.flipud(PAGE.image))  # the scan was replaced
    (out / "page2.hea").unlink()  # an output went missing
    third = CountingDigitizer()
    report = digitize_paths([inputs], out, formats=["wfdb", "json"], digitizer=third)
    assert third.calls == 2 and sorted(report.written) == ["page1", "page2"] and report.skipped == 1
    other = CountingDigitizer()
    digitize_paths([inputs], out, formats=["wfdb", "json"], overlay=True, digitizer=other)  # other settings
    assert other.calls == 3


def test_a_killed_batch_goes_on_where_it_stopped(tmp_path: Path) -> None:
    inputs, out = _inputs(tmp_path / "in", 4), tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        digitize_paths([inputs], out, digitizer=CountingDigitizer(stop_at=3))
    manifest = (out / "ecgstudio-manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == 2  # the two finished pages, on disk before the interruption
    rest = CountingDigitizer()
    report = digitize_paths([inputs], out, digitizer=rest)
    assert rest.calls == 2 and report.skipped == 2 and sorted(report.written) == ["page2", "page3"]


def test_failed_pages_are_retried_only_when_asked(tmp_path: Path) -> None:
    inputs, out = _inputs(tmp_path / "in", 2), tmp_path / "out"
    _png(inputs / "boom.png", np.zeros((120, 120, 3), np.uint8))
    report = digitize_paths([inputs], out, digitizer=CountingDigitizer())
    assert list(report.failed) == ["boom"]
    with open(report.summary, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["record"] == "boom" and rows[0]["needs_review"] == "failed"  # pages to review first
    again = CountingDigitizer()
    report = digitize_paths([inputs], out, digitizer=again)
    assert again.calls == 0 and report.failed_before == 1 and report.ok
    retry = CountingDigitizer()
    report = digitize_paths([inputs], out, digitizer=retry, retry_failed=True)
    assert retry.calls == 1 and list(report.failed) == ["boom"]


@pytest.mark.slow
def test_two_workers_give_what_one_gives(tmp_path: Path) -> None:
    """The real engine in two worker processes: same records and values as in this process."""
    inputs = tmp_path / "in"
    for k in range(2):
        _png(inputs / f"p{k}.png", render_page(style=PageStyle(layout="3x4+1", dpi=100), seed=10 + k).image)
    one = digitize_paths([inputs], tmp_path / "one", workers=1)
    two = digitize_paths([inputs], tmp_path / "two", workers=2)
    assert sorted(one.written) == sorted(two.written) == ["p0", "p1"]
    for name in one.written:
        a, b = read_signals(tmp_path / "one" / f"{name}.hea"), read_signals(tmp_path / "two" / f"{name}.hea")
        np.testing.assert_allclose(a.mv, b.mv, atol=1e-3, equal_nan=True)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A local Ray head on 127.0.0.1 (a one-node cluster), stopped at the end.  Its home (where
    Ray keeps an auth token once it has run on a machine) is the test's own, for head and
    client alike, so what Ray left in the user's home cannot lock the test out."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ecgstudio[cluster]')")
    import shutil
    import socket
    import subprocess

    exe = shutil.which("ray")
    if exe is None:
        pytest.skip("the ray command is not on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = str(tmp_path_factory.mktemp("ray-home"))
    saved_home = os.environ.get("HOME")
    os.environ["HOME"] = home
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [exe, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2"]
    try:
        subprocess.run([*start, "--include-dashboard=false", "--disable-usage-stats"], check=True, env=env, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([exe, "stop", "--force"], check=False, env=env, timeout=120)
        if saved_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved_home


@pytest.mark.slow
def test_a_ray_cluster_gives_what_one_process_gives(tmp_path: Path, ray_head: str) -> None:
    """The same per-file function as Ray actors on a real (local) head: same records, values,
    manifest and failures as the local run."""
    inputs = tmp_path / "in"
    _png(inputs / "p0.png", render_page(style=PageStyle(layout="3x4+1", dpi=100), seed=21).image)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    local = digitize_paths([inputs], tmp_path / "local", workers=1)
    remote = digitize_paths([inputs], tmp_path / "ray", workers=1, ray=ray_head)
    assert sorted(local.written) == sorted(remote.written) == ["p0"]
    assert list(local.failed) == list(remote.failed) == ["broken"] and local.failed == remote.failed
    a, b = read_signals(tmp_path / "local" / "p0.hea"), read_signals(tmp_path / "ray" / "p0.hea")
    np.testing.assert_allclose(a.mv, b.mv, atol=1e-3, equal_nan=True)
    again = digitize_paths([inputs], tmp_path / "ray", workers=1, ray=ray_head)  # resumes like a local run
    assert again.skipped == 1 and again.failed_before == 1 and not again.written


def test_complete_writes_completed_leads_and_says_which_samples_are_which(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    report = digitize_paths([tmp_path / "in"], out, formats=["csv", "json"], complete=True, digitizer=TruthDigitizer())
    assert report.ok
    with open(out / "a.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    kinds = {row["aVL_source"] for row in rows}
    assert kinds == {"measured", "reconstructed"}  # beats placed by the rhythm strip where not exact
    first = rows[10]  # t = 0.02 s: aVL is not printed then (3x4+1), but I, II and III are
    assert first["aVL_source"] == "reconstructed" and first["aVL"] != ""
    sidecar = json.loads((out / "a.json").read_text(encoding="utf-8"))
    assert ["measured", 2.5, 5.0] in sidecar["completion"]["aVL"]
    plain = digitize_paths([tmp_path / "in"], tmp_path / "plain", formats=["csv"], digitizer=TruthDigitizer())
    assert plain.ok and "aVL_source" not in (tmp_path / "plain" / "a.csv").read_text().splitlines()[0]


class LostLeadDigitizer(TruthDigitizer):
    """The ground truth with lead V2 not read at all (a stain over its whole box)."""

    def digitize(self, image, options=None, *, progress=None):
        dig = super().digitize(image, options, progress=progress)
        mv = dig.signals.mv.copy()
        mv[:, list(dig.signals.lead_names).index("V2")] = np.nan
        return replace(dig, signals=replace(dig.signals, mv=mv))


def test_complete_says_which_leads_it_could_not_complete(tmp_path: Path, capsys) -> None:
    _png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    report = digitize_paths([tmp_path / "in"], out, formats=["csv"], complete=True, digitizer=LostLeadDigitizer())
    assert report.ok and report.incomplete == {"a": ["V2"]}
    rows = list(csv.DictReader((out / "a.csv").read_text(encoding="utf-8").splitlines()))
    assert {row["V2_source"] for row in rows} == {"none"} and {row["V2"] for row in rows} == {""}
    assert {row["V1_source"] for row in rows} == {"measured", "reconstructed"}  # the others are complete
    summary = (out / "ecgstudio-summary.csv").read_text(encoding="utf-8")
    assert "not completed: V2" in summary
