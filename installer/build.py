"""Build the self-contained ECG Studio: ``python installer/build.py`` (needs ``pip install pyinstaller``).

The result is a one-folder app, ``dist/ECGStudio/`` (``ECGStudio`` in it is the executable), that
needs no Python and no network: the shipped model and the sample scan are inside.  On Linux the
folder also gets the desktop entry, its icon and ``install-desktop-entry.sh``.  ``--check`` then
runs the bundle as a user would: ``--version``, ``gui --selftest`` (headless) and ``digitize``
of the sample, and prints the folder's size and the times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "ecgstudio.spec"
NAME = "ECGStudio"


def executable(dist: Path) -> Path:
    """The command-line executable of the bundle built into ``dist``."""
    if sys.platform == "win32":
        return dist / NAME / "ecgstudio-cli.exe"
    if sys.platform == "darwin":
        return dist / "ECG Studio.app" / "Contents" / "MacOS" / NAME
    return dist / NAME / NAME


def folder_size(folder: Path) -> int:
    """Bytes in the files under ``folder`` (links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def strip_torch(bundle: Path) -> None:
    """Drop the static symbol tables of torch's libraries (about 90 MB; Linux, where ``strip`` exists).

    Only torch's own libraries are stripped: the libraries of wheels repaired by auditwheel
    (numpy, scipy, OpenCV, Pillow, h5py) can break when stripped, so PyInstaller's ``strip``
    option, which strips everything, stays off.
    """
    tool = shutil.which("strip")
    if tool is None:
        print("strip not found: torch's libraries keep their symbol tables")
        return
    for lib in sorted((bundle / "_internal" / "torch" / "lib").glob("*.so*")):
        if not lib.is_symlink():
            subprocess.run([tool, "--strip-unneeded", str(lib)], check=True)


def build(dist: Path, work: Path, *, clean: bool = False) -> Path:
    """Run PyInstaller on the spec; returns the bundle's folder."""
    import PyInstaller.__main__

    if not (ROOT / "resources" / "icon.png").is_file():
        sys.path.insert(0, str(HERE))
        from make_icon import ICON, draw_icon

        draw_icon().save(ICON, optimize=True)
    args = [str(SPEC), "--noconfirm", "--distpath", str(dist), "--workpath", str(work), "--log-level", "WARN"]
    PyInstaller.__main__.run([*args, "--clean"] if clean else args)
    bundle = dist / NAME
    if sys.platform.startswith("linux"):
        strip_torch(bundle)
        shutil.copy2(HERE / "ecgstudio.desktop", bundle / "ecgstudio.desktop")
        shutil.copy2(ROOT / "resources" / "icon.png", bundle / "ecgstudio.png")
        shutil.copy2(HERE / "install-desktop-entry.sh", bundle / "install-desktop-entry.sh")
    return bundle


def clean_env(home: Path) -> dict[str, str]:
    """An environment without Python's variables or a display, with ``home`` as the user's home."""
    env = {"PATH": os.defpath, "HOME": str(home), "LANG": "C.UTF-8"}
    if sys.platform == "win32":
        env.update(
            {k: os.environ[k] for k in ("SYSTEMROOT", "TEMP", "TMP") if k in os.environ},
            USERPROFILE=str(home),
            APPDATA=str(home / "AppData" / "Roaming"),
            LOCALAPPDATA=str(home / "AppData" / "Local"),
        )
    return env


def check(dist: Path) -> dict[str, float]:
    """Run the built bundle as a user would; returns its size in MiB and the timings in seconds."""
    exe = executable(dist)
    sample = dist / NAME / "_internal" / "resources" / "sample_scan.jpg"
    results = {"size_mib": folder_size(dist / NAME) / 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        env = clean_env(Path(tmp))
        for key, cmd in (
            ("version_s", [exe, "--version"]),
            ("selftest_s", [exe, "gui", "--selftest"]),
            ("digitize_s", [exe, "digitize", sample, "--out", Path(tmp) / "out", "-q"]),
        ):
            start = time.perf_counter()
            done = subprocess.run([str(c) for c in cmd], env=env, cwd=tmp, capture_output=True, text=True, timeout=900)
            results[key] = time.perf_counter() - start
            print(f"$ {' '.join(str(c) for c in cmd)}\n{done.stdout.strip()}  [{results[key]:.1f} s]")
            if done.returncode != 0:
                raise SystemExit(f"{cmd[1]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"bundle {dist / NAME}: {results['size_mib']:.0f} MiB")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the bundle goes (default dist/)")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "build" / "pyinstaller",
        help="PyInstaller's work folder (default build/pyinstaller/)",
    )
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's caches first")
    parser.add_argument("--check", action="store_true", help="then run the bundle: --version, selftest, digitize")
    parser.add_argument("--check-only", action="store_true", help="only check an existing bundle in --dist")
    args = parser.parse_args(argv)
    dist = args.dist.resolve()
    if not args.check_only:
        start = time.perf_counter()
        bundle = build(dist, args.work.resolve(), clean=args.clean)
        print(f"built {bundle} in {time.perf_counter() - start:.0f} s")
    if args.check or args.check_only:
        check(dist)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
