"""The studio in a real X server (Xvfb), where window managers, scroll bars and resizes behave as
on a desk: offscreen tests cannot see a resize loop.  Skips with the reason when Xvfb or Qt's
xcb platform (``libxcb-cursor0`` and friends, see README) is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ecgstudio.synth.render import PageStyle, render_page

SCRIPT = Path(__file__).with_name("x11_open_page.py")
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def x_display():
    """A private Xvfb display, stopped at the end; skips where it cannot run the studio."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb libxcb-cursor0)")
    display = f":{90 + os.getpid() % 100}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    probe = subprocess.run(
        [sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        server.terminate()
        pytest.skip(f"Qt cannot use the X server (missing xcb libraries?): {probe.stderr.strip()[-300:]}")
    yield env
    server.terminate()
    server.wait(timeout=10)


def _open(env: dict, image: Path, size: tuple[int, int], data: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(image), str(size[0]), str(size[1]), str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_portrait_page_in_a_wide_window_does_not_freeze(x_display, tmp_path) -> None:
    """Fitting a portrait page made the scroll bars come and go, which resized the view, which
    fitted the page again, for ever (the window hung at 100 % CPU)."""
    page = render_page(style=PageStyle(layout="6x2", dpi=150), seed=5).image
    h, w = page.shape[:2]
    portrait = np.full((int(w * 1.09), w, 3), 255, np.uint8)
    portrait[:h] = page
    path = tmp_path / "portrait.png"
    Image.fromarray(portrait).save(path)
    assert "answered" in _open(x_display, path, (1900, 1000), tmp_path)


@pytest.mark.shared
def test_the_photo_that_hung_opens(x_display, shared_data, tmp_path) -> None:
    photo = shared_data / "ecg-image-kit" / "sample-data" / "ecg-images" / "ecg00005.jpg"
    assert "answered" in _open(x_display, photo, (1900, 1000), tmp_path)
