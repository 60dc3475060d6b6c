"""The self-contained app (``installer/``): build it, then use it as a clinician's machine would.

The bundle tests are slow (the build takes a few minutes) and run wherever PyInstaller is
installed, which the test extras do (so CI builds and checks the bundle); without it they skip.
Run only them with::

    python -m pytest tests/test_installer.py -m slow

The bundle is built into a temporary folder and run with a bare environment: no Python
variables, no display, no ``PATH`` to this checkout, and a fresh home folder, so that what it
writes can be found.  Two quick tests run everywhere: how shipped files are found in a bundle,
and the self-test from the source checkout.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "installer" / "build.py"
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

bundle_test = pytest.mark.skipif(
    importlib.util.find_spec("PyInstaller") is None, reason="pip install pyinstaller to build and test the bundle"
)


def test_shipped_files_are_found_in_the_bundle_first(tmp_path, monkeypatch) -> None:
    from ecgstudio.resources import resource_path

    assert resource_path("models/tracenet.pt") == ROOT / "models" / "tracenet.pt"  # a source checkout
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tracenet.pt").write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resource_path("models/tracenet.pt") == tmp_path / "models" / "tracenet.pt"
    assert resource_path("resources/nothing.png") == tmp_path / "resources" / "nothing.png"  # named where expected


@pytest.mark.skipif(not (ROOT / "resources" / "sample_scan.jpg").is_file(), reason="no sample scan in this checkout")
def test_selftest_opens_the_sample_from_the_welcome_panel(capsys) -> None:
    from ecgstudio.cli import main

    assert main(["gui", "--selftest"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("selftest ok:") and "12 leads" in line and "sample_scan.jpg" in line, line


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The app built from this checkout into a temporary ``dist/``."""
    tmp = tmp_path_factory.mktemp("installer")
    subprocess.run(
        [sys.executable, str(BUILD), "--dist", str(tmp / "dist"), "--work", str(tmp / "build")],
        cwd=tmp,
        check=True,
        timeout=3600,
    )
    folder = tmp / "dist" / "ECGStudio"
    assert (folder / ("ECGStudio.exe" if sys.platform == "win32" else "ECGStudio")).is_file()
    return folder


@pytest.fixture
def run_bundle(bundle, tmp_path):
    """Run the bundle's command line in a bare environment whose home is ``tmp_path/home``."""
    home = tmp_path / "home"
    home.mkdir()
    spec = importlib.util.spec_from_file_location("ecgstudio_installer_build", BUILD)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    env = build.clean_env(home)
    exe = build.executable(bundle.parent)

    def run(*args: str | os.PathLike[str], timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(exe), *map(str, args)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout
        )

    run.home = home
    return run


@pytest.mark.slow
@bundle_test
def test_bundle_holds_the_model_the_sample_and_no_tests(bundle) -> None:
    inside = bundle / "_internal"
    for name in (
        "models/tracenet.pt",
        "models/tracenet.json",
        "models/leadnames.pt",
        "models/leadnames.json",
        "models/settings.pt",
        "models/settings.json",
        "models/speed.pt",
        "models/speed.json",
        "resources/sample_scan.jpg",
        "resources/icon.png",
    ):
        assert (inside / name).is_file(), name
    assert (inside / "models" / "tracenet.pt").read_bytes() == (ROOT / "models" / "tracenet.pt").read_bytes()
    assert not (inside / "torch" / "test").exists() and not (inside / "torch" / "include").exists()
    assert not (inside / "tkinter").exists() and not (inside / "matplotlib").exists()
    if sys.platform.startswith("linux"):
        entry = (bundle / "ecgstudio.desktop").read_text(encoding="utf-8")
        assert "Exec=ECGStudio gui %F" in entry and "Icon=ecgstudio" in entry
        assert (bundle / "ecgstudio.png").is_file() and os.access(bundle / "install-desktop-entry.sh", os.X_OK)


@pytest.mark.slow
@bundle_test
def test_version_and_selftest_run_headless_and_leave_the_bundle_alone(bundle, run_bundle) -> None:
    before = _files(bundle)
    done = run_bundle("--version")
    assert done.returncode == 0 and done.stdout.startswith("ecgstudio "), done.stderr
    done = run_bundle("gui", "--selftest")  # no DISPLAY, no QT_QPA_PLATFORM: the flag alone suffices
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("selftest ok:") and "12 leads" in line and "layout " in line, line
    data_dir = run_bundle.home / ".local" / "share" / "ecgstudio" if sys.platform.startswith("linux") else None
    if data_dir is not None:
        assert f"labels go to {data_dir / 'labels'}" in line
    assert _files(bundle) == before  # nothing written next to the executable


@pytest.mark.slow
@bundle_test
def test_bundled_cli_digitizes_the_sample_to_wfdb(bundle, run_bundle, tmp_path) -> None:
    import wfdb

    out = tmp_path / "out"
    done = run_bundle("digitize", bundle / "_internal" / "resources" / "sample_scan.jpg", "--out", out, "-q")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "sample_scan.hea").is_file() and (out / "sample_scan.dat").is_file()
    record = wfdb.rdrecord(str(out / "sample_scan"))
    assert tuple(record.sig_name) == LEADS
    assert record.fs == 500 and record.p_signal.shape[1] == 12
    assert np.isfinite(record.p_signal).any(axis=0).all()  # every lead has a signal


@pytest.mark.slow
@bundle_test
def test_bundled_models_list_reads_the_user_data_dir(bundle, run_bundle) -> None:
    done = run_bundle("models")
    assert done.returncode == 0, done.stderr[-3000:]
    versions = done.stdout.splitlines()
    assert len(versions) == 1 and versions[0].split()[:2] == ["*", "shipped"], done.stdout  # a fresh home
    assert str(bundle / "_internal" / "models" / "tracenet.pt") in versions[0]
