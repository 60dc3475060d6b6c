"""The command line: help, errors as messages (never tracebacks), evaluate's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgstudio.cli import main


def test_version_and_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "ecgstudio" in capsys.readouterr().out
    for command in ("digitize", "synth", "evaluate", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage" in capsys.readouterr().out


def test_missing_input_is_a_message(tmp_path, capsys) -> None:
    assert main(["digitize", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "nope.png" in err and "Traceback" not in err


def test_unknown_layout_is_refused(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path), "--layout", "9x9"])
    assert "invalid choice" in capsys.readouterr().err


def test_evaluate_prints_a_table_by_kind(tmp_path, capsys, shared_data) -> None:
    assert main(["evaluate", str(tmp_path), "--truth", str(shared_data / "pairs.csv")]) == 0
    out = capsys.readouterr().out
    for kind in ("real scan", "clean render", "damaged render"):
        assert kind in out
    assert "missing" in out and "from 0 s" not in out

    fixes = Path(__file__).resolve().parents[2] / "benchmarks" / "pairs_corrections.csv"
    assert (
        main(
            [
                "evaluate",
                str(tmp_path),
                "--truth",
                str(shared_data / "pairs.csv"),
                "--corrections",
                str(fixes),
                "--per-image",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count("layout 3x4+1 from 0 s") == 17


def test_finetune_and_model_versions_from_the_command_line(tmp_path, capsys) -> None:
    from ecgstudio.synth.batch import write_pages

    labels = tmp_path / "labels"
    write_pages(labels, 2, seed=3, layout="3x4+1", damage="none", style_overrides={"dpi": 100})
    data = tmp_path / "data"
    code = main(["finetune", str(labels), "--steps", "2", "--out", "mine", "--data-dir", str(data), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "model version mine" in out and "validation SNR" in out
    assert main(["models", "use", "mine", "--data-dir", str(data)]) == 0
    listing = capsys.readouterr().out
    assert "* mine" in listing and "shipped" in listing
    assert "val SNR" in listing.splitlines()[[line.startswith("* mine") for line in listing.splitlines()].index(True)]
    assert main(["models", "rollback", "--data-dir", str(data)]) == 0
    assert "* shipped" in capsys.readouterr().out
    assert main(["models", "use", "nonexistent", "--data-dir", str(data)]) == 2
    assert "nonexistent" in capsys.readouterr().err
