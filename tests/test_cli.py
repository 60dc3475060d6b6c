"""The command line: help, errors as messages (never tracebacks), evaluate's table."""

from __future__ import annotations

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
    assert "missing" in out
