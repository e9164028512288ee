"""The curves contract module: names, atomic netCDF I/O, structure check, pilot prefix."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from palm_bayes.data import contract
from palm_bayes.data.load import load_curves
from palm_bayes.errors import PalmInputError

ROOT = Path(__file__).resolve().parents[1]


def curves() -> xr.Dataset:
    rows = []
    for strategy, final in (("random", 100), ("margin", 50)):
        for seed in (0, 1, 2):
            for budget in np.linspace(final / 10, final, 10):
                rows.append((strategy, seed, budget, 0.5 + budget / (4 * final)))
    frame = pd.DataFrame(rows, columns=["strategy", "seed", "budget", "accuracy"])
    return load_curves(frame, n_test=200)


def test_truncate_cuts_each_curve_at_its_own_final_budget():
    ds = curves()
    cut = contract.truncate(ds, 0.3)
    kept = cut["budget"].max(("seed", "step"))
    assert kept.sel(strategy="random").item() == 30
    assert kept.sel(strategy="margin").item() == 15
    assert cut["accuracy"].notnull().sum().item() == 2 * 3 * 3
    assert cut["n_test"].equals(ds["n_test"])  # variables without step are kept
    assert cut.sizes == ds.sizes


def test_truncate_keeps_the_first_seeds_with_data():
    ds = curves()
    ds["accuracy"] = ds["accuracy"].where(~((ds.strategy == "margin") & (ds.seed == 0)))
    ds["budget"] = ds["budget"].where(ds["accuracy"].notnull())
    cut = contract.truncate(ds, None, seeds=1)
    seen = cut["accuracy"].notnull().any("step")
    assert seen.sel(strategy="random").values.ravel().tolist() == [True, False, False]
    assert seen.sel(strategy="margin").values.ravel().tolist() == [False, True, False]


def test_save_and_read_round_trip(tmp_path):
    ds = curves()
    ds.attrs = contract.provenance(model="test")
    path = contract.save_curves(ds, tmp_path / "c.nc")
    back = contract.read_netcdf(path)
    xr.testing.assert_allclose(back, ds)
    assert back.attrs["palm_bayes_version"] == contract.__version__
    assert not list(tmp_path.glob(".c.nc.*"))  # no temporary left behind


def test_check_structure_names_the_problem():
    ds = curves()
    assert contract.check_structure(ds) is ds
    with pytest.raises(PalmInputError, match="lacks the variable"):
        contract.check_structure(ds.drop_vars("budget"))
    with pytest.raises(PalmInputError, match="outside the contract"):
        contract.check_structure(ds.expand_dims(model=["a"]))


def test_al_runner_imports_only_the_contract_of_palm_bayes():
    found = set()
    for file in (ROOT / "al_runner").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("palm_bayes"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("palm_bayes")}
    assert found <= {"palm_bayes.data.contract"}, found
