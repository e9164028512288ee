"""Files of the reference PALM code written by palm_bayes and read back: PALM.py output folders
and mechanistic-hard-switch-v1 schedules.

Round trip: reference files -> palm_bayes -> reference layout -> the reader, with identical values
where both define them. The reference's key and column names are those of ``PALM.py`` and
``deep-al/tools/mechanistic/export_schedule.py`` (github.com/juliamachnio/PALM).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

import palm_bayes as pb
from palm_bayes.cli import main
from palm_bayes.data.reference import read_reference_fits
from palm_bayes.decisions.schedule_file import (
    read_schedule_json,
    schedule_payload,
    write_schedule_json,
)
from palm_bayes.report.palm_outputs import PALM_CSV_COLUMNS, PALM_JSON_KEYS, write_palm_outputs

B = 50.0
TRUE = {"random": (0.85, 0.1, 0.5, 1.0), "typiclust": (0.9, 0.15, 0.2, 0.9)}


def _reference_palm_py(folder, method, y, budget_size=B):
    """What PALM.py --save_csv writes for one method: its least squares on x = 1..N."""

    def f(x, a, d, al, be):
        return a * (1 - (1 - d) ** (np.clip(x + al, 1e-8, None) ** be))

    x = np.arange(1, len(y) + 1, dtype=float)
    popt, _ = curve_fit(f, x, y, p0=[y.max(), 0.5, 1.0, 1.0],
                        bounds=([0, 0, -1000, 0], [100, 1, 1000, 100]), maxfev=50000)  # fmt: skip
    folder.mkdir(parents=True)
    meta = dict(zip(PALM_JSON_KEYS, ["CIFAR10", "resnet18", method, len(y), "PALM (episodes)",
                                     budget_size, *map(float, popt), []], strict=True))  # fmt: skip
    (folder / "palm_params.json").write_text(json.dumps(meta, indent=2))
    np.save(folder / "y_avg.npy", y)
    np.save(folder / "y_fit.npy", f(x, *popt))


@pytest.fixture(scope="module")
def reference_outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference") / "out"
    rng = np.random.default_rng(0)
    for method, p in TRUE.items():
        y = 100 * pb.palm_curve(np.arange(1, 11) * B, *p, b=B) + rng.normal(0, 0.3, 10)
        _reference_palm_py(root / method, method, y)
    return root


def test_palm_outputs_round_trip_through_palm_bayes(reference_outputs, tmp_path):
    curves = pb.load_curves(reference_outputs)
    lsq = pb.fit_least_squares(curves)
    folders = write_palm_outputs(tmp_path / "back", curves, lsq)
    assert sorted(f.name for f in folders) == ["random", "typiclust"]
    for method in TRUE:
        ours, theirs = tmp_path / "back" / method, reference_outputs / method
        meta = json.loads((ours / "palm_params.json").read_text())
        ref = json.loads((theirs / "palm_params.json").read_text())
        assert list(meta)[: len(PALM_JSON_KEYS)] == list(PALM_JSON_KEYS)  # the reference's keys
        for key in ("dataset", "model", "method", "episodes", "mode", "budget_size"):
            assert meta[key] == ref[key], key
        for key in ("A_max", "delta", "alpha", "beta"):  # the same least-squares optimum
            assert meta[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key
        np.testing.assert_allclose(np.load(ours / "y_avg.npy"), np.load(theirs / "y_avg.npy"),
                                   rtol=1e-13)  # fmt: skip
        np.testing.assert_allclose(np.load(ours / "y_fit.npy"), np.load(theirs / "y_fit.npy"),
                                   rtol=1e-5)  # fmt: skip
        csv = pd.read_csv(ours / "palm_params.csv")
        assert tuple(csv.columns[: len(PALM_CSV_COLUMNS)]) == PALM_CSV_COLUMNS
        assert csv.loc[0, "A_max"] == pytest.approx(meta["A_max"])
    # the existing readers see the same curves and fits in both folders
    again = pb.load_curves(tmp_path / "back")
    np.testing.assert_allclose(again["accuracy"], curves["accuracy"], rtol=1e-13)
    np.testing.assert_array_equal(again["budget"], curves["budget"])
    mine, theirs = read_reference_fits(tmp_path / "back"), read_reference_fits(reference_outputs)
    for name in ("A_max", "delta", "alpha", "beta", "b"):
        np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-5, atol=1e-6)


def test_a_first_budget_other_than_b_shifts_alpha_to_the_episode_index(tmp_path):
    budgets = 100.0 + np.arange(8) * B  # an initial set of 2b, then b per round
    accuracy = pb.palm_curve(budgets, *TRUE["random"], b=B)
    frame = pd.DataFrame({"strategy": "m", "budget": budgets, "accuracy": accuracy})
    curves = pb.load_curves(frame, labels_per_round=B)
    lsq = pb.fit_least_squares(curves)
    (folder,) = write_palm_outputs(tmp_path, curves, lsq)
    meta = json.loads((folder / "palm_params.json").read_text())
    assert meta["alpha"] == pytest.approx(float(lsq["alpha"].squeeze()) + 1.0)  # B_1 / b - 1
    episode = np.arange(1, 9, dtype=float)  # the reference's formula on its own x
    ref_formula = meta["A_max"] * (
        1 - (1 - meta["delta"]) ** ((episode + meta["alpha"]) ** meta["beta"])
    )
    np.testing.assert_allclose(np.load(folder / "y_fit.npy"), ref_formula, rtol=1e-12)
    assert meta["budgets"] == budgets.tolist()


def test_cli_fit_palm_output_and_export_palm_agree(two_strategy_fit_dir, tmp_path, capsys):
    written = two_strategy_fit_dir.parent / "palm"  # the shared fit ran with --palm-output
    assert main(["export-palm", str(two_strategy_fit_dir), str(tmp_path / "again")]) == 0
    assert "wrote 2 PALM.py output folder(s)" in capsys.readouterr().out
    for name in ("good", "poor"):
        meta = json.loads((written / name / "palm_params.json").read_text())
        assert meta == json.loads((tmp_path / "again" / name / "palm_params.json").read_text())
        assert meta["A_max"] < 1  # the curves came as fractions: written as fractions
        fit = pb.PalmFit.from_netcdf(two_strategy_fit_dir / "fit.nc")
        draws = fit.idata.posterior["A_max"].sel(strategy=name).squeeze()
        assert meta["A_max_median"] == pytest.approx(float(draws.median()))
        assert meta["A_max_lower"] < meta["A_max_median"] < meta["A_max_upper"]
    fits = read_reference_fits(tmp_path / "again")
    assert sorted(fits["strategy"].values) == ["good", "poor"]
    assert main(["export-palm", str(two_strategy_fit_dir), str(tmp_path / "pct"), "--percent"]) == 0
    pct = json.loads((tmp_path / "pct" / "good" / "palm_params.json").read_text())
    assert pct["A_max"] == pytest.approx(100 * meta_of(written, "good")["A_max"])
    assert main(["export-palm", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 2


def meta_of(folder, name):
    return json.loads((folder / name / "palm_params.json").read_text())


# ------------------------------------------------------------------ hard-switch schedules
def test_schedule_payload_has_the_reference_keys_and_loader_checks(tmp_path):
    stages = [(0, "typiclust"), (120, "coreset"), (300, "uncertainty")]
    path = write_schedule_json(stages, tmp_path / "s.json")
    payload = json.loads(path.read_text())
    # the reference's hard_switch loader: this schema, one of two sources, two increasing
    # positive thresholds (its stages are fixed)
    assert payload["schema"] == "mechanistic-hard-switch-v1"
    assert payload["source"] in {"proxy_phase_analysis", "mechanistic_global_regression"}
    assert payload["thresholds"] == [120.0, 300.0]
    assert payload["stages"] == ["typiclust", "coreset", "uncertainty"]
    assert read_schedule_json(path) == [(0.0, "typiclust"), (120.0, "coreset"),
                                        (300.0, "uncertainty")]  # fmt: skip
    with pytest.raises(pb.PalmInputError, match="one stage"):
        schedule_payload([(0, "margin")])


def test_al_runner_reads_the_reference_and_palm_bayes_schedule_files(tmp_path):
    from al_runner.errors import ALRunnerError
    from al_runner.strategies import STRATEGIES, get_strategy
    from al_runner.strategies.schedule import read_schedule_json as al_read

    ours = write_schedule_json([(0, "typiclust"), (100, "margin")], tmp_path / "ours.json")
    assert al_read(ours, STRATEGIES) == "typiclust>margin@100"
    # the reference's own file (export_schedule.py): no 'stages' means its fixed three
    theirs = tmp_path / "theirs.json"
    theirs.write_text(json.dumps({"schema": "mechanistic-hard-switch-v1",
                                  "source": "proxy_phase_analysis", "thresholds": [60, 100.5],
                                  "proxy_columns": ["a", "b"]}))  # fmt: skip
    spec = al_read(theirs, STRATEGIES)
    assert spec == "typiclust>coreset@60>uncertainty@101"  # n >= 100.5 from 101 labels on
    schedule = get_strategy(spec)
    assert [schedule.active(n).name for n in (59, 60, 100, 101)] == [
        "typiclust", "coreset", "coreset", "uncertainty"]  # fmt: skip
    for text, message in [
        ('{"schema": "mechanistic-hard-switch-v2", "thresholds": [1, 2]}', "is not"),
        ('{"schema": "mechanistic-hard-switch-v1", "thresholds": [300, 100]}', "must increase"),
        ('{"schema": "mechanistic-hard-switch-v1", "thresholds": [10], "stages": ["a", "b"]}',
         "unknown strategy"),
        ("[1, 2", "not readable JSON"),
    ]:  # fmt: skip
        theirs.write_text(text)
        with pytest.raises(ALRunnerError, match=message):
            al_read(theirs, STRATEGIES)


def test_cli_schedule_json_file_and_al_runner_at_file(two_strategy_fit_dir, tmp_path, capsys):
    out = tmp_path / "schedule.json"
    args = ["schedule", str(two_strategy_fit_dir), "--candidates", "poor", "good",
            "--switches", "200", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr()
    assert f"wrote {out}" in text.out and "al-runner only" in text.err  # not TCU: a note
    assert read_schedule_json(out) == [(0.0, "poor"), (200.0, "good")]
    assert json.loads(out.read_text())["palm_bayes"]["spec"] == "poor>good@200"
    # --json alone still prints the plan
    assert main(args[:-1]) == 0
    assert json.loads(capsys.readouterr().out)["schedule"] == "poor>good@200"
    # al-runner: a malformed file is one line on stderr, exit 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "x"}')
    cmd = [sys.executable, "-m", "al_runner.cli", "run", "--dataset", "digits", "--strategies",
           f"@{bad}", "--out", str(tmp_path / "c.nc")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"al-runner: error: schedule file {bad}: schema 'x' is not 'mechanistic-hard-switch-v1'"
    ]


def test_grid_with_a_wrong_type_is_one_line(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('datasets = ["digits"]\nstrategies = ["random"]\nrounds = "x"\n')
    cmd = [sys.executable, "-m", "al_runner.cli", "sweep", str(grid), "--out", "c.nc"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"al-runner: error: {grid}: rounds must be an integer, got 'x'"
    ]
