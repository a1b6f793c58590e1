"""Hostile inputs shared by the security tests: payloads that would create a marker file if
they ran, session files, and the one-sentence check for messages. (tests/ is on sys.path
because it holds the root conftest.)"""

from __future__ import annotations

import json
import pathlib
import re

import torch

from explorer.app.session_file import SESSION_FORMAT


def one_sentence(msg: str) -> bool:
    """One plain sentence: one line, no traceback, no second sentence."""
    return ("\n" not in msg and "Traceback" not in msg and msg.rstrip().endswith((".", "?"))
            and not re.search(r"[.?!] [A-Z]", msg.rstrip()[:-1]))


class Touch:
    """Unpickling this creates ``marker`` (stands for any code a pickle could run)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "ran"))


def _factory_file(tmp_path) -> pathlib.Path:
    marker = tmp_path / "factory_ran"
    f = tmp_path / "evil.py"
    f.write_text(
        "import pathlib, torch.nn as nn\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "def make():\n    return nn.Linear(4, 3)\n")
    torch.save(torch.nn.Linear(4, 3).state_dict(), tmp_path / "lin.pt")
    return f


def _session(tmp_path, models, **extra) -> pathlib.Path:
    ws = tmp_path / "ws.h5"
    d = {"format": SESSION_FORMAT, "version": 2, "workspace": str(ws), "dataset": None,
         "models": models, "current": None, "selection": [], "focus": None, "view": {}}
    d.update(extra)
    p = tmp_path / "s.eesession"
    p.write_text(json.dumps(d))
    return p


def _existing_workspace(tmp_path):
    from explorer.store import Workspace

    Workspace(tmp_path / "ws.h5")


BAD = {
    "wrong type of version": {"version": "2"},
    "models not a list": {"models": {"id": "x"}},
    "model id a number": {"models": [{"id": 5}]},
    "unknown top key": {"evil": 1},
    "unknown model option": {"models": [{"id": "m", "source": "x.pt", "options": {"exec": "rm -rf /"}}]},
    "trust not a boolean": {"models": [{"id": "m", "source": "x.pt", "options": {"trust": "yes"}}]},
    "huge seed": {"view": {"projection": {"seed": 99999999999999999999}}},
    "huge n_neighbors": {"view": {"projection": {"n_neighbors": 10**12}}},
    "nan min_dist": {"view": {"projection": {"min_dist": float("nan")}}},
    "negative focus": {"focus": -1},
    "selection of text": {"selection": ["1", "2"]},
    "boolean in selection": {"selection": [True]},
    "unknown map method": {"view": {"method": "tsne"}},
    "arch_kwargs too deep": {"models": [{"id": "m", "source": "x.pt",
                                         "options": {"arch": "mlp", "arch_kwargs": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}]},
    "workspace a system file": {"workspace": "/etc/passwd"},
    "workspace in /proc": {"workspace": "/proc/self/mem"},
    "dataset path a number": {"dataset": {"path": 3}},
    "dataset option key not a name": {"dataset": {"path": "x.npy", "options": {"a b": 1}}},
    "two models share an id": {"models": [{"id": "m"}, {"id": "m"}]},
    "newer version": {"version": 99},
    "NUL in a path": {"workspace": "/tmp/a\x00b.h5"},
    "layouts unknown": {"models": [{"id": "m", "layouts": ["tsne"]}]},
}
