"""``palm phases``: the reference's search width and its unstandardised-features flag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from palm_bayes.cli import build_parser, main
from palm_bayes.model.simulate import simulate_phase_records
from palm_bayes.phase_analysis import analysis
from palm_bayes.phase_analysis.analysis import dp_bic_phases, phase_table, phases


@pytest.fixture(scope="module")
def records():
    budgets = np.geomspace(20, 3000, 22)
    return simulate_phase_records((150.0,), budgets=budgets, noise=0.01, rng=3)


def test_standardising_makes_proxy_units_irrelevant_and_the_flag_turns_it_off(records):
    scaled = records.copy()
    proxy = analysis.PROXIES[0]
    scaled[proxy] = scaled[proxy] * 1000.0  # the same proxy in other units
    a = phases(records, max_boundaries=2, draws=400, seed=0)
    b = phases(scaled, max_boundaries=2, draws=400, seed=0)
    assert a.n_boundaries == b.n_boundaries
    np.testing.assert_allclose(a.loo["elpd_loo"], b.loo["elpd_loo"], rtol=1e-6)
    raw = phases(records, max_boundaries=2, draws=400, seed=0, standardise=False)
    assert raw.reference_json()["coefficients_scale"].endswith("(not standardised)")
    assert a.reference_json()["coefficients_scale"].startswith("proxies standardised")
    table = phase_table(records)
    dp = dp_bic_phases(table, max_segments=3, standardise=False)
    assert raw.baseline == dp  # the reference's DP + BIC with --no-standardize-features
    # on raw scales the coefficient prior is in the proxies' units: the evidence changes
    assert not np.allclose(raw.loo["log_evidence"], a.loo["log_evidence"])


def test_cli_flag_and_default_width(records, tmp_path, capsys):
    args = build_parser().parse_args(["phases", "x.csv"])
    assert args.max_boundaries == 5 and args.standardise  # the reference's 6 segments
    src = tmp_path / "records.csv"
    records.to_csv(src, index=False)
    cli = ["phases", str(src), "--quiet", "--max-boundaries", "1", "--json", "--no-standardise"]
    assert main(cli) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["coefficients_scale"] == "proxies on their own scales (not standardised)"


def test_too_many_segmentations_stop_the_search_with_a_note(records, monkeypatch):
    monkeypatch.setattr(analysis, "MAX_SEGMENTATIONS", 50)
    result = phases(records, max_boundaries=3, draws=200, seed=0)
    assert max(result.fits) < 3
    assert any("segmentations" in note for note in result.notes)
