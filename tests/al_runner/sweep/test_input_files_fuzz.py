"""Property tests: generated sweep grids and schedule files load, or are refused in one line.

A grid TOML or a ``mechanistic-hard-switch-v1`` schedule JSON with wrong types, negative or
huge values, or unknown keys must either load or raise :class:`ALRunnerError` with a one-line
message; any other exception (``ValueError`` from ``int("x")``, ``TypeError``, ``KeyError``,
``MemoryError``) fails the test. Derandomized, like tests/palm_bayes/data/test_input_fuzz.py.
"""

from __future__ import annotations

import collections
import json
import math
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from al_runner.errors import ALRunnerError
from al_runner.strategies import STRATEGIES
from al_runner.strategies.schedule import SCHEDULE_SCHEMA, read_schedule_json
from al_runner.sweep.grid import SweepGrid

OUTCOMES: collections.Counter = collections.Counter()
SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([-1, 0, 1, 2, 3, 20, 10**9, 2**40]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["", "x", "1", "random", "digits", "raw", "linear", "all", "cuda", "@x.json"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["random", "digits", "delta", "k", "x"]), inner, max_size=2
        ),
    ),
    max_leaves=6,
)
GRID_KEYS = ["datasets", "strategies", "embeddings", "seeds", "rounds", "labels_per_round",
             "initial_size", "initial", "learner", "epochs", "threads", "device", "retries",
             "gpus_per_run", "strategy_options", "embedding_options", "data_roots",
             "dataset_options", "confidence_delta", "imbalance", "image_size", "proxies",
             "budget", "colour"]  # fmt: skip
PLAUSIBLE = {"datasets": ["digits"], "strategies": ["random", "margin"], "rounds": 4,
             "labels_per_round": 20}  # fmt: skip
#: Values that are right for their key, so that a generated grid is often one mistake away
GOOD = {"seeds": [2, [0, 5]], "rounds": [3, 10**6], "labels_per_round": [1, 50],
        "embeddings": [["raw", "pca"]], "strategies": ["margin", ["random"]], "epochs": [1],
        "threads": [1], "retries": [0, 3], "gpus_per_run": [0.5, 2], "initial": ["cold"],
        "device": ["cpu"], "confidence_delta": [0.1], "proxies": [False], "initial_size": [5],
        "strategy_options": [{"margin": {}}], "budget": [20]}  # fmt: skip


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _one_line_or_loaded(kind, load):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = load()
        except ALRunnerError as err:
            message = str(err)
            assert message and "\n" not in message, repr(message)
            OUTCOMES[kind, "refused"] += 1
            return None
    OUTCOMES[kind, "loaded"] += 1
    return result


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)  # fmt: skip
@given(
    base=st.integers(0, 3),
    keys=st.lists(st.sampled_from(GRID_KEYS), max_size=3, unique=True),
    data=st.data(),
)
def test_generated_grid_files_load_or_are_refused_in_one_line(tmp_path_factory, base, keys, data):
    table = dict(PLAUSIBLE) if base else {}  # a plausible grid three times in four
    for key in keys:
        good = GOOD.get(key)
        table[key] = data.draw(VALUES if not good or data.draw(st.booleans()) else
                               st.sampled_from(good))  # fmt: skip
    path = tmp_path_factory.mktemp("grid") / "grid.toml"
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items()))
    grid = _one_line_or_loaded("grid", lambda: SweepGrid.from_toml(path))
    if grid is not None:  # what loads is a usable grid: typed settings, runnable cells
        assert all(isinstance(s, int) and s >= 0 for s in grid.seeds)
        assert isinstance(grid.template.rounds, int) and grid.template.rounds >= 1
        assert grid.runs() and grid.run_config(grid.runs()[0], ".").validate()


STAGE = st.sampled_from(["typiclust", "coreset", "margin", "random", "nope", "a>b@3", ""])


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)  # fmt: skip
@given(
    schema=st.sampled_from([SCHEDULE_SCHEMA] * 6 + ["mechanistic-hard-switch-v2", 1]),
    thresholds=st.one_of(
        st.lists(st.integers(1, 400), min_size=2, max_size=2, unique=True).map(sorted),
        st.lists(st.floats(0.5, 1e6), min_size=1, max_size=3).map(sorted),
        st.lists(SCALARS, max_size=4),
        SCALARS,
    ),
    stages=st.one_of(
        st.none(),
        st.just("fit"),  # as many valid stages as the thresholds need
        st.just("fit"),
        st.lists(STAGE, max_size=4),
        SCALARS,
    ),
    extra=st.dictionaries(st.sampled_from(["source", "selection", "colour"]), VALUES, max_size=2),
    raw=st.sampled_from([None] * 15 + ["", "[1, 2]", "{", "null", "\ufffe"]),
)
def test_generated_schedule_files_load_or_are_refused_in_one_line(
    tmp_path_factory, schema, thresholds, stages, extra, raw
):
    payload = {"schema": schema, "thresholds": thresholds} | extra
    if stages == "fit" and isinstance(thresholds, list):
        stages = ["typiclust", "coreset", "margin", "random", "entropy"][: len(thresholds) + 1]
    if stages is not None:
        payload["stages"] = stages
    path = tmp_path_factory.mktemp("schedule") / "schedule.json"
    path.write_text(raw if raw is not None else json.dumps(payload))
    spec = _one_line_or_loaded("schedule", lambda: read_schedule_json(path, STRATEGIES))
    if spec is not None:
        names = spec.split(">")
        assert len(names) == len(thresholds) + 1
        assert all(n.partition("@")[0] in STRATEGIES for n in names)


def test_both_outcomes_occur():
    """The generators reach both sides of the line (else the properties above are empty)."""
    if not OUTCOMES:
        pytest.skip("run with the property tests above")
    print(dict(OUTCOMES))
    for kind in ("grid", "schedule"):
        assert OUTCOMES[kind, "loaded"] >= 10 and OUTCOMES[kind, "refused"] >= 10, OUTCOMES
