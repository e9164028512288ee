"""The palm command end to end, on simulated curves and on the shipped example data."""

import contextlib
import io
import json
from pathlib import Path

import pytest

import palm_bayes as pb
from palm_bayes.cli import main

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "lcdb_curves.nc"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fit_dir(two_strategy_fit_dir):
    """``palm fit`` of good and poor curves (tests/conftest.py, shared with the report tests)."""
    return two_strategy_fit_dir


def test_fit_writes_its_files(fit_dir):
    for name in ("fit.nc", "curves.nc", "summary.csv", "least_squares.csv", "fit.png"):
        assert (fit_dir / name).stat().st_size > 0, name
    assert (fit_dir / "fit.png").read_bytes()[:8] == PNG_MAGIC


def test_forecast_json(fit_dir, capsys):
    assert main(["forecast", str(fit_dir), "--budget", "100", "1000", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    assert {"strategy", "budget", "median", "lower", "upper"} <= set(rows[0])
    assert all(r["lower"] <= r["median"] <= r["upper"] for r in rows)


def test_compare_finds_the_better_strategy(fit_dir, capsys):
    assert (
        main(
            [
                "compare",
                str(fit_dir),
                "--a",
                "strategy=good",
                "--b",
                "strategy=poor",
                "--budget",
                "400",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["prob_better"] > 0.9


def test_labels_needed_table(fit_dir, capsys):
    assert main(["labels-needed", str(fit_dir), "--target", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "Labels needed for accuracy 0.7" in out and "p_reachable" in out


def test_plot(fit_dir, tmp_path):
    assert main(["plot", str(fit_dir), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["compare", "{fit}", "--a", "strategy=nope", "--b", "strategy=poor", "--budget", "10"],
            "unknown strategy 'nope'",
        ),
        (["labels-needed", "{fit}", "--target", "1.5"], "target accuracy must lie in"),
        (["forecast", "{missing}", "--budget", "10"], "no fit at"),
        (["fit", "{missing}/c.csv", "--out", "{missing}"], "no such file or folder"),
        (
            [
                "fit",
                "{fit}/curves.nc",
                "--out",
                "{missing}",
                "--hierarchy",
                "strategy",
                "--workers",
                "2",
            ],
            "a pooled fit is one model",
        ),  # fmt: skip
        (
            ["compare", "{fit}", "--a", "good", "--b", "strategy=poor", "--budget", "10"],
            "must look like dim=label",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(fit_dir, tmp_path, capsys, argv, message):
    argv = [a.format(fit=fit_dir, missing=tmp_path / "missing") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("palm: error:") and message in err and "\n" not in err


def test_fit_on_the_example_data(example_fits):
    _, independent, rows = example_fits
    assert len(rows) == 9
    assert all(0 < r["A_max"] <= 1 for r in rows)
    # the printed table is the saved fit's summary: the posterior mean A_max per curve
    summary = pb.PalmFit.from_netcdf(independent / "fit.nc").summary()
    a_max = summary["mean"].sel(parameter="A_max")
    for r in rows:
        want = float(a_max.sel(dataset=r["dataset"], strategy=r["strategy"]).squeeze())
        assert r["A_max"] == pytest.approx(want, rel=1e-6)


@pytest.fixture(scope="module")
def example_fits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-pooled")
    # 200 + 200: openml-44's P(SVM beats forest) is 0.000 at 150, 200 and 300 draws alike
    # (the tests compare the commands to the library on the same fit, and this clear case)
    common = ["--draws", "200", "--tune", "200", "--chains", "2", "--quiet"]
    pooled, independent = folder / "pooled", folder / "independent"
    args = ["fit", str(EXAMPLES), "--out", str(pooled), "--hierarchy", "strategy,dataset"]
    assert main(args + common) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["fit", str(EXAMPLES), "--out", str(independent), "--json"] + common) == 0
    return pooled, independent, json.loads(printed.getvalue())


def test_hierarchical_fit_and_population_queries(example_fits, capsys):
    pooled, _, _ = example_fits
    assert pb.PalmFit.from_netcdf(pooled / "fit.nc").hierarchy == ("strategy", "dataset")
    capsys.readouterr()
    assert main(["forecast", str(pooled), "--budget", "1000", "--new", "dataset", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["strategy"] for row in rows} == {
        "LogisticRegression",
        "RandomForestClassifier",
        "SVC_rbf",
    }
    assert all("dataset" not in row for row in rows)
    args = [
        "compare",
        str(pooled),
        "--a",
        "strategy=SVC_rbf",
        "--b",
        "strategy=RandomForestClassifier",
    ]
    assert main(args + ["--budget", "1000", "--new", "dataset", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    # the command prints the library's answer for the same fit and seed
    fit = pb.PalmFit.from_netcdf(pooled / "fit.nc")
    a, b = {"strategy": "SVC_rbf"}, {"strategy": "RandomForestClassifier"}
    expected = float(fit.prob_better(a, b, 1000.0, new="dataset").squeeze())
    assert row["prob_better"] == pytest.approx(expected, abs=1e-9)
    # on one dataset the answer is clear: on openml-44 the random forest reaches ~0.94 and the
    # SVM ~0.70 at 1,448 labels
    assert main(args + ["--budget", "1000", "--json"]) == 0
    rows = {r["dataset"]: r["prob_better"] for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"openml-3", "openml-44", "openml-60"}
    assert rows["openml-44"] < 0.05


def test_compare_models(example_fits, capsys):
    pooled, independent, _ = example_fits
    assert main(["compare-models", str(pooled), str(independent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["fit"] for row in rows} == {str(pooled), str(independent)}
    assert sorted(row["rank"] for row in rows) == [0, 1]


def test_bad_hierarchy_is_a_clean_error(tmp_path, capsys):
    args = ["fit", str(EXAMPLES), "--out", str(tmp_path / "x"), "--hierarchy", "learner"]
    assert main(args) == 2
    assert "unknown dimension 'learner'" in capsys.readouterr().err
