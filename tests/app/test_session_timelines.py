"""A session keeps its open timeline tabs under ``view.timelines`` (issue 18 item 9): the
entries round-trip through the strict schema, carry nothing that runs code, and a malformed one
is refused in one sentence; files without the key (older ones) still open."""

from __future__ import annotations

import json

import pytest

from explorer.app.session_file import read_session_file, timeline_entry
from explorer.core.errors import InputError
from hostile import _session, one_sentence


def test_a_timeline_entry_round_trips_and_keeps_no_code(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    e = timeline_entry(run, 300, {"seed": 4, "map_method": "umap", "align": "none", "arch": "evil.py:build",
                                  "factory": "evil.py:build", "trust": True, "layer": None},
                       position=2.25, shown=True)
    assert e == {"folder": str(run.resolve()), "probe_size": 300, "seed": 4, "map_method": "umap",
                 "align": "none", "position": 2.25, "shown": True}
    s = _session(tmp_path, [], view={"timelines": [e]})
    assert read_session_file(s)["view"]["timelines"] == [e]


def test_a_session_without_timelines_still_reads(tmp_path):
    s = _session(tmp_path, [], view={"color_by": "label", "method": "pca", "search": ""})
    assert "timelines" not in read_session_file(s)["view"]


@pytest.mark.parametrize("bad", [
    {"folder": "/r", "factory": "evil.py:build"},   # code is never carried
    {"folder": "/r", "trust": True},
    {"probe_size": 100},                            # no folder
    {"folder": "/r", "probe_size": "100"},
    {"folder": "/r", "probe_size": 1},
    {"folder": "/r", "position": -1},
    {"folder": "/r", "position": float("inf")},
    {"folder": "/r", "map_method": "tsne"},
    {"folder": "/r", "shown": "yes"},
    {"folder": 5},
])
def test_a_malformed_timeline_entry_is_refused_in_one_sentence(tmp_path, bad):
    s = _session(tmp_path, [], view={"timelines": [bad]})
    with pytest.raises(InputError) as err:
        read_session_file(s)
    assert "s.eesession" in str(err.value) and "timelines" in str(err.value)
    assert one_sentence(str(err.value)), str(err.value)


def test_too_many_timelines_are_refused(tmp_path):
    s = _session(tmp_path, [], view={"timelines": [{"folder": f"/r{i}"} for i in range(17)]})
    with pytest.raises(InputError) as err:
        read_session_file(s)
    assert one_sentence(str(err.value))
    json.loads(s.read_text())  # the file itself was valid JSON
