"""The resume state: round trip, files written by older versions, refusal of other settings."""

import json

import numpy as np
import pytest

from al_runner.errors import ALRunnerError
from al_runner.experiment.config import RunConfig
from al_runner.experiment.state import (
    RunRecord,
    RunState,
    config_key,
    load_state_labelled,
    state_path,
)

# A state file as al_runner wrote it before RunState existed (one finished round of one run).
OLD_STATE = {
    "version": 1,
    "config": {
        "dataset": "digits", "strategies": ["random", "margin"], "learner": "linear",
        "rounds": 3, "budget": 10, "initial_size": 10, "initial": "random", "seeds": [0],
        "epochs": None, "embedding": "raw", "strategy_options": {},
    },
    "runs": {
        "random/0": {
            "labelled": [260, 885, 630, 1, 2, 3, 4, 5, 6, 7],
            "accuracy": [0.4897959183673469], "budget": [10], "select_seconds": [0.0002],
            "train_seconds": [0.046],
            "proxies": {"label_discrepancy": [0.30], "empirical_risk_reduction": [float("nan")]},
        }
    },
}  # fmt: skip


def _config() -> RunConfig:
    return RunConfig("digits", ["random", "margin"], rounds=3, labels_per_round=10).validate()


def test_old_state_files_load_and_keep_their_format(tmp_path):
    path = tmp_path / "c.nc.state.json"
    path.write_text(json.dumps(OLD_STATE))
    state = RunState.load(path, _config())
    run = state.run("random", 0)
    assert run.rounds == 1 and run.labelled[:3] == [260, 885, 630]
    assert state.run("margin", 0) is None and state.rounds_done == 1
    again = json.loads(state.to_json())
    assert again["config"] == OLD_STATE["config"]  # `budget` stays the key on disk
    assert list(again["runs"]["random/0"]) == list(OLD_STATE["runs"]["random/0"])
    np.testing.assert_array_equal(load_state_labelled(tmp_path / "c.nc", "random", 0),
                                  OLD_STATE["runs"]["random/0"]["labelled"])  # fmt: skip


def test_round_trip_and_atomic_save(tmp_path):
    state = RunState.new(_config())
    run = state.run("margin", 0, create=True)
    run.add_round(np.arange(10), 0.5, 0.1, 0.2, {"a": 1.0})
    run.add_round(np.arange(20), 0.6, 0.1, 0.2, {"a": 2.0, "b": 3.0})
    assert run.series("b")[1] == 3.0 and np.isnan(run.series("b")[0])
    assert run.budget == [10, 20] and run.series("missing") == []
    path = state_path(tmp_path / "x.nc")
    state.save(path)
    assert RunState.load(path, _config()).to_json() == state.to_json()  # NaN != NaN in ==
    loaded = RunRecord.from_dict(json.loads(path.read_text())["runs"]["margin/0"])
    assert loaded.labelled == run.labelled and loaded.proxies["a"] == [1.0, 2.0]


def test_other_settings_and_broken_files_are_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(OLD_STATE))
    other = RunConfig("digits", ["random", "margin"], rounds=4, labels_per_round=10)
    with pytest.raises(ALRunnerError, match="other settings"):
        RunState.load(path, other.validate())
    path.write_text("{not json")
    with pytest.raises(ALRunnerError, match="unreadable"):
        RunState.load(path, _config())
    assert config_key(_config()) == OLD_STATE["config"]
