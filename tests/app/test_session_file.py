"""Reopening a session runs nothing the user did not choose (issue: checkpoint metadata,
sidecars and session files execute code). Headless: the Qt-free plan and restore job.

Each hostile payload would create a marker file if it ran; the tests assert the marker never
appears without the user's confirmation, and that with it the same payload does run (so the
guard, not a broken loader, is what stops it)."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest
import torch

from explorer.app.session_file import (SESSION_FORMAT, Confirmation, plan_restore, read_session_file,
                                       restore_job)
from explorer.core.errors import InputError
from explorer.core.jobs import drain
from hostile import BAD, Touch, _existing_workspace, _factory_file, _session, one_sentence


@pytest.mark.parametrize("key", ["factory", "arch"])
def test_a_session_factory_runs_only_when_confirmed(tmp_path, key):
    _existing_workspace(tmp_path)
    evil = _factory_file(tmp_path)
    marker = tmp_path / "factory_ran"
    s = _session(tmp_path, [{"id": "m", "source": str(tmp_path / "lin.pt"),
                             "options": {key: f"{evil}:make"}}])
    plan = plan_restore(s)
    assert not marker.exists()  # planning reads the session, runs nothing
    (c,) = plan.confirmations
    assert c.kind == "factory" and c.model_id == "m"
    assert str(evil.resolve()) in c.message
    import hashlib

    assert c.sha256 == hashlib.sha256(evil.read_bytes()).hexdigest() and c.sha256 in c.message

    refused = drain(restore_job(plan, approved=[]))
    assert not marker.exists()
    assert refused.encoders == [] and len(refused.skipped) == 1
    assert one_sentence(refused.skipped[0][1])

    allowed = drain(restore_job(plan, approved=[c]))
    assert marker.exists()
    (md, enc), = allowed.encoders
    x = torch.randn(2, 4)
    sd = torch.load(tmp_path / "lin.pt", weights_only=True)
    np.testing.assert_allclose(enc.module(x).detach().numpy(), (x @ sd["weight"].T + sd["bias"]).numpy(), atol=1e-6)


def test_trust_is_never_taken_from_a_session(tmp_path):
    _existing_workspace(tmp_path)
    marker = tmp_path / "pickle_ran"
    ckpt = tmp_path / "pickled.pt"
    torch.save({"model": Touch(str(marker))}, ckpt)
    s = _session(tmp_path, [{"id": "p", "source": str(ckpt), "options": {"trust": True}}], version=1)
    plan = plan_restore(s)
    assert plan.confirmations == []
    result = drain(restore_job(plan))
    assert not marker.exists()
    assert result.encoders == []
    (md, c), = result.ask_trust
    import hashlib

    assert c.kind == "trust" and c.sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert str(ckpt.resolve()) in c.message and c.sha256 in c.message
    # the explicit user action (trust=True after the confirmation) does run it
    from explorer.encoders import open_encoder

    with pytest.raises(InputError):
        open_encoder(ckpt, **md["options"], trust=True)  # not a model, but it ran
    assert marker.exists()


def test_saved_sessions_never_carry_trust(tmp_path):
    from explorer.app.session import Session

    torch.save(torch.nn.Linear(4, 3), tmp_path / "whole.pt")  # a pickled module
    from explorer.encoders import open_encoder

    sess = Session(tmp_path / "ws.h5")
    enc = open_encoder(tmp_path / "whole.pt", trust=True)
    sess.add_model(enc, options={"trust": True})
    sess.save(tmp_path / "s.eesession")
    d = json.loads((tmp_path / "s.eesession").read_text())
    assert "trust" not in json.dumps(d["models"])
    assert d["models"][0]["pickled"] is True
    result = drain(restore_job(plan_restore(tmp_path / "s.eesession")))
    assert result.encoders == [] and len(result.ask_trust) == 1


def test_a_missing_workspace_is_only_created_after_asking(tmp_path):
    s = _session(tmp_path, [], workspace=str(tmp_path / "new" / "deep" / "ws.h5"))
    plan = plan_restore(s)
    assert [c.kind for c in plan.confirmations] == ["workspace"]
    drain(restore_job(plan))
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_sessions_are_refused_in_one_sentence(tmp_path, case):
    s = _session(tmp_path, [])
    d = json.loads(s.read_text())
    d.update(BAD[case])
    s.write_text(json.dumps(d))
    with pytest.raises(InputError) as err:
        plan_restore(s)
    assert "s.eesession" in str(err.value)
    assert one_sentence(str(err.value)), str(err.value)
    assert not (tmp_path / "ws.h5").exists()


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, "{" * 50 + "}", "not json", "",
                                  json.dumps({"format": SESSION_FORMAT, "workspace": "a.h5",
                                              "models": [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]})])
def test_garbage_and_deep_nesting_are_refused_in_one_sentence(tmp_path, text):
    s = tmp_path / "s.eesession"
    s.write_text(text)
    with pytest.raises(InputError) as err:
        read_session_file(s)
    assert one_sentence(str(err.value)), str(err.value)


def test_a_session_naming_a_system_file_as_its_dataset_fails_in_one_sentence(tmp_path):
    _existing_workspace(tmp_path)
    s = _session(tmp_path, [], dataset={"path": "/etc/passwd", "format": None, "options": {}})
    plan = plan_restore(s)
    with pytest.raises(InputError) as err:
        drain(restore_job(plan))
    assert one_sentence(str(err.value)), str(err.value)


def test_a_version_1_session_still_opens(tmp_path):
    _existing_workspace(tmp_path)
    np.save(tmp_path / "v.npy", np.eye(5, dtype=np.float32))
    s = _session(tmp_path, [{"id": "precomputed", "source": None, "options": {}, "emb_key": None,
                             "layouts": ["pca"]}], version=1,
                 dataset={"path": str(tmp_path / "v.npy"), "format": "npy", "options": {}, "metadata": None},
                 view={"color_by": "label", "method": "pca", "search": "",
                       "projection": {"method": "pca", "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine",
                                      "seed": 0, "dims": 2}})
    result = drain(restore_job(plan_restore(s)))
    assert len(result.dataset) == 5
    assert [md["id"] for md, _ in result.encoders] == ["precomputed"]


def test_confirmation_messages_are_one_sentence():
    for c in (Confirmation("factory", "/x/evil.py (make)", "m", "ab" * 32),
              Confirmation("trust", "/x/m.pt", "m", "cd" * 32), Confirmation("workspace", "/x/ws.h5")):
        assert one_sentence(c.message), c.message


def test_every_model_option_a_session_may_carry_is_an_open_encoder_parameter():
    import inspect

    from explorer.app.session_file import MODEL_OPTION_KEYS
    from explorer.encoders import open_encoder

    params = set(inspect.signature(open_encoder).parameters) - {"path"}
    assert MODEL_OPTION_KEYS <= params
