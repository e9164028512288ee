"""RunConfig names: ``labels_per_round`` and its deprecated old name ``budget`` everywhere."""

import dataclasses

import pytest

from al_runner.cli import _config, build_parser
from al_runner.errors import ALRunnerError
from al_runner.experiment.config import RunConfig
from al_runner.experiment.state import config_key
from al_runner.sweep.run import SweepGrid


def test_budget_keyword_is_a_deprecated_alias():
    with pytest.deprecated_call(match="labels_per_round"):
        old = RunConfig("digits", ["random"], rounds=3, budget=15)
    assert old == RunConfig("digits", ["random"], rounds=3, labels_per_round=15)
    with pytest.deprecated_call():
        assert old.budget == 15
    with pytest.raises(ALRunnerError, match="not both"), pytest.deprecated_call():
        RunConfig("digits", ["random"], labels_per_round=10, budget=15)
    new = dataclasses.replace(old, rounds=4)  # replace() knows only the new name
    assert new.labels_per_round == 15 and new.rounds == 4
    assert list(new.validate().budgets()) == [15, 30, 45, 60]  # cumulative, as in the curves
    assert config_key(new)["budget"] == 15 and "labels_per_round" not in config_key(new)


def test_cli_budget_flag_is_an_alias():
    base = ["run", "--dataset", "digits", "--out", "c.nc"]
    for flag in ("--labels-per-round", "--budget"):
        assert _config(build_parser().parse_args([*base, flag, "7"])).labels_per_round == 7


def test_grid_budget_key_still_reads_with_a_warning():
    table = {"datasets": ["digits"], "strategies": ["random"], "rounds": 3}
    with pytest.deprecated_call(match="labels_per_round"):
        grid = SweepGrid.from_dict({**table, "budget": 30})
    assert grid.template.labels_per_round == 30
    assert grid.to_dict()["labels_per_round"] == 30 and "budget" not in grid.to_dict()
    with pytest.raises(ALRunnerError, match="not both"), pytest.deprecated_call():
        SweepGrid.from_dict({**table, "budget": 30, "labels_per_round": 20})
