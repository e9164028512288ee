import numpy as np
import pandas as pd
import pytest
import xarray as xr

import palm_bayes as pb
from palm_bayes.data.contract import save_curves
from palm_bayes.data.load import load_curves
from palm_bayes.data.prepare import curve_dims, iter_curves, labels_per_round

BUDGETS = [10, 20, 30, 40, 50]


def table(**columns):
    n = len(BUDGETS)
    base = {
        "strategy": ["random"] * n,
        "seed": [0] * n,
        "budget": BUDGETS,
        "accuracy": [0.5, 0.6, 0.65, 0.7, 0.72],
    }
    return pd.DataFrame(base | columns)


def two_curves():
    a = table()
    b = table(strategy=["margin"] * 5, accuracy=[0.52, 0.63, 0.7, 0.74, 0.77])
    return pd.concat([a, b, table(seed=[1] * 5)], ignore_index=True)


def test_long_table_becomes_the_contract():
    ds = load_curves(two_curves())
    assert ds["accuracy"].dims == ("dataset", "strategy", "embedding", "seed", "step")
    assert sorted(ds.strategy.values.tolist()) == ["margin", "random"]
    assert ds.dataset.values.tolist() == ["default"]  # missing id columns default
    assert ds.sizes["seed"] == 2
    assert np.isnan(ds["accuracy"].sel(strategy="margin", seed=1)).all()  # no such run
    assert curve_dims(ds) == ("dataset", "strategy", "embedding")


def test_round_trip_through_netcdf(tmp_path):
    ds = load_curves(two_curves(), n_test=500)
    path = save_curves(ds, tmp_path / "curves.nc")
    back = load_curves(path)
    xr.testing.assert_allclose(back[["budget", "accuracy"]], ds[["budget", "accuracy"]])
    assert float(back["n_test"].max()) == 500


def test_csv_and_unequal_lengths(tmp_path):
    frame = pd.concat([table(), table(strategy=["short"] * 5).iloc[:4]])
    frame.to_csv(tmp_path / "c.csv", index=False)
    ds = load_curves(tmp_path / "c.csv")
    short = ds["accuracy"].sel(strategy="short").squeeze()
    assert short.notnull().sum() == 4 and np.isnan(short[-1])


def test_reference_advisor_csv(tmp_path):
    pd.DataFrame(
        {
            "dataset": "cifar10",
            "method": "typiclust",
            "cumulative_budget": BUDGETS,
            "score": [40.0, 55.0, 61.0, 66.0, 70.0],
        }
    ).to_csv(tmp_path / "r.csv", index=False)
    ds = load_curves(tmp_path / "r.csv")
    assert ds.strategy.values.tolist() == ["typiclust"]
    np.testing.assert_allclose(ds["accuracy"].squeeze(), [0.4, 0.55, 0.61, 0.66, 0.7])


def test_palm_run_folder(tmp_path):
    for seed in (0, 1):
        run = tmp_path / f"typiclust_{seed}"
        run.mkdir()
        np.save(run / "plot_episode_yvalues.npy", np.array([30.0, 45.0, 52.0, 58.0, 61.0]))
    with pytest.raises(pb.PalmInputError, match="pass labels_per_round="):
        load_curves(tmp_path)
    ds = load_curves(tmp_path, labels_per_round=10)
    assert ds.seed.values.tolist() == [0, 1]
    np.testing.assert_allclose(ds["budget"].isel(seed=0).squeeze(), [10, 20, 30, 40, 50])
    assert float(ds["accuracy"].max()) == pytest.approx(0.61)
    assert float(labels_per_round(ds).squeeze()) == 10.0


def test_percent_detection_and_override():
    pct = table(accuracy=[50.0, 60.0, 65.0, 70.0, 72.0])
    assert float(load_curves(pct)["accuracy"].max()) == pytest.approx(0.72)
    low = table(accuracy=[0.5, 0.6, 0.65, 0.7, 0.9])
    assert float(load_curves(low, percent=True)["accuracy"].max()) == pytest.approx(0.009)
    with pytest.raises(pb.PalmInputError, match="outside the range of a fraction"):
        load_curves(pct, percent=False)


def test_labels_per_round_median_step_or_attr():
    frame = table(budget=[100, 200, 300, 500, 700])
    assert (
        float(labels_per_round(load_curves(frame)).squeeze()) == 150.0
    )  # median of the steps 100, 100, 200, 200
    ds = load_curves(frame, labels_per_round=50)
    assert float(labels_per_round(ds).squeeze()) == 50.0


def test_iter_curves_skips_empty_combinations():
    frame = pd.concat([table(dataset=["a"] * 5), table(dataset=["b"] * 5, strategy=["m"] * 5)])
    ds = load_curves(frame)
    labels = [lab for lab, _ in iter_curves(ds)]
    assert len(labels) == 2 and ds.sizes["dataset"] * ds.sizes["strategy"] == 4
    _, sub = next(iter_curves(ds))
    assert sub["accuracy"].dims == ("seed", "step")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            table(accuracy=[0.5, np.nan, 0.6, 0.7, 0.7]),
            r"strategy=random embedding=default seed=0: accuracy is nan",
        ),
        (table(accuracy=[0.5, np.inf, 0.6, 0.7, 0.7]), "NaN, inf or not a number"),
        (table(accuracy=[0.5, 0.6, -0.1, 0.7, 0.7]), "accuracy -0.1 is outside"),
        (table(accuracy=[50.0, 60.0, 65.0, 70.0, 140.0]), "outside the range of percent"),
        (table(budget=[10, 20, 20, 40, 50]), "duplicate rows"),
        (table(budget=[10, 30, 20, 40, 50]), "budgets must increase within a seed"),
        (table(budget=[-10, 20, 30, 40, 50]), "negative budget"),
        (table().iloc[:3], "only 3 distinct budget"),
        (table().drop(columns="accuracy"), r"lacks column\(s\) \['accuracy'\]"),
        (table(n_test=[100, 100, 0, 100, 100]), "n_test must be positive"),
    ],
)
def test_bad_input_is_named(frame, message):
    with pytest.raises(pb.PalmInputError, match=message):
        load_curves(frame)


def test_mixed_percent_and_fraction():
    frame = pd.concat(
        [table(), table(strategy=["margin"] * 5, accuracy=[50.0, 60.0, 65.0, 70.0, 72.0])]
    )
    with pytest.raises(pb.PalmInputError, match="mixed percent and fraction"):
        load_curves(frame)


def test_bad_sources(tmp_path):
    with pytest.raises(pb.PalmInputError, match="no such file or folder"):
        load_curves(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(pb.PalmInputError, match="unknown curves format '.json'"):
        load_curves(tmp_path / "x.json")
    (tmp_path / "bad.nc").write_bytes(b"not netcdf")
    with pytest.raises(pb.PalmInputError, match="not a (readable )?netCDF"):
        load_curves(tmp_path / "bad.nc")
    with pytest.raises(pb.PalmInputError, match="holds no"):
        load_curves(tmp_path)
    with pytest.raises(pb.PalmInputError, match="cannot read curves from a list"):
        load_curves([1, 2, 3])


def test_atomic_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_curves(load_curves(table()), tmp_path / "c.nc")
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        save_curves(load_curves(two_curves()), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.nc"]


def test_lcdb_reader_on_a_small_csv(tmp_path, monkeypatch):
    from palm_bayes.data.lcdb import lcdb_csv_path, lcdb_curves

    rows = []
    for learner in ("sklearn.svm.SVC_rbf", "sklearn.linear_model.LogisticRegression"):
        for outer, inner in ((0, 0), (0, 1)):
            for size in (16, 23, 32, 45, 64):
                rows.append(
                    (44, learner, size, 100, outer, inner, 0.01, 1.0, 0.7, 0.6 + size / 1e3)
                )
    frame = pd.DataFrame(
        rows,
        columns=[
            "openmlid",
            "learner",
            "size_train",
            "size_test",
            "outer_seed",
            "inner_seed",
            "traintime",
            "score_train",
            "score_valid",
            "score_test",
        ],
    )
    path = tmp_path / "database-accuracy.csv"
    frame.to_csv(path, index=False)
    ds = lcdb_curves(path, min_budgets=5)
    assert ds.dataset.values.tolist() == ["openml-44"]
    assert sorted(ds.strategy.values.tolist()) == ["LogisticRegression", "SVC_rbf"]
    assert ds.seed.values.tolist() == [0, 1]
    assert float(ds["n_test"].max()) == 100
    assert lcdb_curves(path, min_budgets=5, n_curves=1).sizes["strategy"] == 1
    with pytest.raises(pb.PalmInputError, match="no LCDB curve matches"):
        lcdb_curves(path, min_budgets=6)
    monkeypatch.setenv("PALM_LCDB_CSV", str(path))
    assert lcdb_csv_path() == path
    monkeypatch.setenv("PALM_LCDB_CSV", str(tmp_path / "nope.csv"))
    with pytest.raises(pb.PalmInputError, match="not a file"):
        lcdb_csv_path()


def test_shipped_example_curves_load():
    from pathlib import Path

    ds = load_curves(Path(__file__).resolve().parents[3] / "examples" / "lcdb_curves.nc")
    assert ds.sizes["dataset"] == 3 and ds.sizes["strategy"] == 3
    assert float(ds["accuracy"].max()) <= 1.0
