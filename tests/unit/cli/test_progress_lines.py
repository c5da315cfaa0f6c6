"""Progress lines for logs (no terminal): a line at the start, at every tenth of the work
or after the interval (even with no update in between), and at the end; the interval
from the environment; --quiet shows nothing."""

from __future__ import annotations

import time

import pytest

from centernet.cli import progress
from centernet.cli.progress import INTERVAL_ENV, LineBar, StageBars, configure


@pytest.fixture(autouse=True)
def _reset():
    yield
    configure()


def test_a_line_at_start_every_tenth_and_end(capsys):
    shown = LineBar(200, "stage", "img", interval_s=3600, step=0.1)
    for _ in range(200):
        shown.update(1)
    shown.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == [
        f"{n}/200" for n in range(0, 201, 20)
    ]
    assert lines[0].startswith("stage: 0/200 img (0%), 0 img/s, elapsed 00:00, ETA ")
    assert "ETA" not in lines[-1] and " (100%), " in lines[-1]


def test_lines_keep_coming_while_nothing_is_reported(capsys):
    shown = LineBar(None, "waiting", "it", interval_s=0.05, step=0.1)
    shown.update(3)
    shown.set_postfix(loss=0.5)
    time.sleep(0.4)
    shown.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 4  # the start, the watcher's lines, no total: no ETA
    assert lines[-1].startswith("waiting: 3/? it, ") and lines[-1].endswith("loss=0.5")


def test_a_finished_stage_left_open_says_so_once(capsys):
    shown = LineBar(1, "choosing", "it", interval_s=0.05, step=0.1)
    shown.update(1)
    time.sleep(0.4)  # the next stage has not reported yet: no repeated "1/1 (100%)" lines
    shown.close()
    lines = capsys.readouterr().err.splitlines()
    starts = [line.split(",")[0] for line in lines]
    assert starts == ["choosing: 0/1 it (0%)", "choosing: 1/1 it (100%)"]


def test_configure_reads_the_interval_and_quiet_shows_nothing(capsys, monkeypatch):
    assert configure(environ={INTERVAL_ENV: "2.5"}).interval_s == 2.5
    assert configure(environ={INTERVAL_ENV: "soon"}).interval_s == 10.0
    monkeypatch.setattr(progress._config, "terminal", False)
    with StageBars() as bars:
        bars("one", 0, 2)
        bars("one", 2, 2)
        bars("two", 1, 1)
    assert [line.split(":")[0] for line in capsys.readouterr().err.splitlines()] == [
        "one",
        "one",
        "two",
        "two",
    ]
    configure(quiet=True)
    assert list(progress.progress(range(3), 3, "none")) == [0, 1, 2]
    with StageBars() as bars:
        bars("one", 1, 2)
    assert capsys.readouterr().err == ""
