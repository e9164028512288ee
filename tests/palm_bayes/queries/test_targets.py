"""Targets a person can mistype get one clear line, not an answer (issue 28, item 5).

On hand-built fits (no sampling): curves that start at 0.45 accuracy with 50 labels.
"""

from __future__ import annotations

import pytest

import palm_bayes as pb
from palm_bayes.cli import main
from palm_bayes.decisions.schedule import schedule
from palm_bayes.queries.targets import check_target, lowest_observed

B = 50.0
CURVES = {
    "random": dict(A_max=0.9, delta=0.5, alpha=0.0, beta=1.0),  # 0.45 at 50 labels
    "margin": dict(A_max=0.92, delta=0.6, alpha=0.0, beta=1.0),  # 0.552 at 50 labels
}
LOWEST = 0.45


@pytest.fixture
def fit(known_fit):
    return known_fit(CURVES, b=B)


def test_the_lowest_observed_accuracy_and_its_budget(fit):
    assert lowest_observed(fit) == (pytest.approx(LOWEST), 50.0)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (1.5, r"must lie in \(0, 1\), got 1.5 \(a percentage\? write 0.015 for 1.5%"),
        (85, r"got 85 \(a percentage\? write 0.85 for 85%"),
        (1.0, "stays below its ceiling"),
        (0.0, r"must lie in \(0, 1\), got 0"),
        (-0.2, r"must lie in \(0, 1\), got -0.2"),
        (float("nan"), r"must lie in \(0, 1\), got nan"),
        (0.3, r"0.3 lies below every observed accuracy \(lowest 0.45, at 50 labels\)"),
    ],
)
def test_fraction_queries_refuse_slips(fit, target, message):
    for query in (
        lambda t: fit.labels_needed(t),
        lambda t: schedule(fit, ["random", "margin"], objective="labels_to_target", target=t),
    ):
        with pytest.raises(pb.PalmInputError, match=message):
            query(target)


def test_advise_reads_plausible_percentages_and_refuses_the_rest(fit):
    as_percent = fit.advise(80).table
    as_fraction = fit.advise(0.8).table
    assert as_percent["labels_median"].equals(as_fraction["labels_median"])
    # the example: 1.5 read as 1.5% lies far below the curves
    with pytest.raises(pb.PalmInputError, match=r"1.5 \(read as 1.5% = 0.015\) lies below every"):
        fit.advise(1.5)
    for bad, message in ((150, "above 100%"), (100, "below 100%"), (-1, "must lie in")):
        with pytest.raises(pb.PalmInputError, match=message):
            fit.advise(bad)


def test_a_target_inside_the_curves_is_answered(fit):
    assert check_target(fit, 0.8) == 0.8
    assert check_target(fit, 80, percent=True) == pytest.approx(0.8)
    need = fit.labels_needed(0.8).sel(strategy="random").squeeze()
    assert float(need["median"]) > 50


@pytest.mark.parametrize(
    ("command", "target", "message"),
    [
        ("advise", "1.5", "lies below every observed accuracy"),
        ("labels-needed", "1.5", "a percentage?"),
        ("labels-needed", "0.2", "lies below every observed accuracy"),
        ("labels-needed", "-3", "must lie in (0, 1)"),
    ],
)
def test_the_cli_answers_a_slip_with_one_line(fit, tmp_path, capsys, command, target, message):
    fit.to_netcdf(tmp_path / "fit.nc")
    assert main([command, str(tmp_path), "--target", target]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
