"""The results log: a line per finished input, readable after any stop; a torn last line
is not done and is cut off on resume; anything else unreadable is an error."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from centernet.errors import CenterNetError
from centernet.runtime.results_log import ResultsLog, pending, read_results_log


def test_lines_are_flushed_as_written_and_replaced_without_resume(tmp_path):
    path = tmp_path / "out" / "log.jsonl"
    log = ResultsLog(path)
    log.write({"source": "a.jpg", "detections": []})
    assert read_results_log(path).records == [{"source": "a.jpg", "detections": []}]  # open
    log.write({"source": "b.jpg", "detections": [{"score": 0.5}]})
    log.close()
    with ResultsLog(path) as fresh:  # no resume: started afresh
        assert fresh.previous.records == []
    assert path.read_text() == ""
    with pytest.raises(ValueError, match="source"):
        ResultsLog(path).write({"detections": []})


def test_a_torn_last_line_is_not_done_and_is_cut_off_on_resume(tmp_path):
    path = tmp_path / "log.jsonl"
    whole = [{"source": s, "n": i} for i, s in enumerate(["a", "b", "a"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in whole) + '{"source": "c", "n"')
    contents = read_results_log(path)
    assert contents.records == whole and contents.torn
    assert contents.done() == Counter({"a": 2, "b": 1})
    with ResultsLog(path, resume=True) as log:
        assert log.previous.records == whole
        log.write({"source": "c", "n": 3})
    again = read_results_log(path)
    assert again.records == [*whole, {"source": "c", "n": 3}] and not again.torn
    # whole JSON without its newline: the write was cut short all the same
    path.write_text(json.dumps(whole[0]) + "\n" + json.dumps(whole[1]))
    assert read_results_log(path).records == whole[:1]


def test_an_unreadable_line_before_the_last_is_an_error(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"source": "a"}\nnot json\n{"source": "b"}\n')
    with pytest.raises(CenterNetError, match="line 2 is not a results line"):
        read_results_log(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(CenterNetError, match="line 1"):
        ResultsLog(path, resume=True)
    assert read_results_log(tmp_path / "absent.jsonl").records == []


def test_pending_counts_repeated_inputs():
    sources = ["a", "b", "a", "c", "a"]
    assert pending(sources, Counter({"a": 2, "c": 1})) == [False, True, False, False, True]
    assert pending(sources, Counter()) == [True] * 5
