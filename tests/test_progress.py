"""Progress bars: on stderr with the loop's description, gone when the loop fails, one process only."""

from __future__ import annotations

import pytest

from maskgit.utils.progress import progress


def test_a_finished_loop_leaves_its_bar_on_stderr_only(capsys):
    with progress("encoding 10 train images", 10) as advance:
        for _ in range(5):
            advance(2)
    out, err = capsys.readouterr()
    assert out == "" and "encoding 10 train images" in err and "10/10" in err


def test_a_failed_loop_leaves_nothing_but_its_error(capsys):
    with pytest.raises(ValueError), progress("encoding 10 train images", 10) as advance:
        advance(3)
        raise ValueError("bad image")
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == ""  # at most the line break rich ends its display with


def test_other_ddp_processes_and_the_switch_show_no_bar(capsys, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with progress("encoding", 4) as advance:
        advance(4)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASKGIT_PROGRESS", "0")
    with progress("encoding", 4) as advance:
        advance(4)
    assert capsys.readouterr() == ("", "")
