"""VAAL and TypiClust-on-SCAN: each one's defining property (the shared template is elsewhere)."""

import numpy as np
import pytest

pytest.importorskip("faiss")
pytest.importorskip("torch")

from sklearn.metrics import adjusted_rand_score

from al_runner.embeddings.scan import scan_clusters, scan_neighbours
from al_runner.errors import ALRunnerError
from al_runner.strategies import PoolState, get_strategy


def _far_region_pool(seed=0):
    """300 points around 0 (30 of them labelled) and 40 unlabelled points in a far region."""
    rng = np.random.default_rng(seed)
    near = rng.normal(size=(300, 8))
    far = rng.normal(size=(40, 8)) + 5.0
    x = np.concatenate([near, far]).astype(np.float32)
    return x, rng.choice(300, size=30, replace=False)


def test_vaal_picks_the_region_no_labelled_point_is_near():
    x, labelled = _far_region_pool()
    state = PoolState(labelled, len(x), 2, representation=x)
    picks = get_strategy("vaal").select(state, 20, np.random.default_rng(0))
    # 40 of 310 unlabelled points (13%) are far; random sampling would take ~3 of 20
    assert np.mean(picks >= 300) >= 0.8
    again = get_strategy("vaal").select(
        PoolState(labelled, len(x), 2, representation=x), 20, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(picks, again)


def test_vaal_cold_start_and_bad_parameters():
    x, _ = _far_region_pool()
    cold = PoolState(np.zeros(0, dtype=np.int64), len(x), 2, representation=x)
    picks = get_strategy("vaal").select(cold, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(picks, np.random.default_rng(1).choice(len(x), 5, replace=False))
    with pytest.raises(ALRunnerError, match="vaal: epochs must be a positive integer"):
        get_strategy("vaal", epochs=0)
    with pytest.raises(ALRunnerError, match="vaal: lr must be > 0"):
        get_strategy("vaal", lr=-1.0)


def _blobs(n=400, k=4, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(k, size=n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize("seed", [0, 1])
def test_scan_recovers_separated_blobs(seed):
    x, y = _blobs(seed=seed)
    labels = scan_clusters(x, 4, seed=seed)
    assert labels.shape == (400,) and labels.min() >= 0 and labels.max() < 4
    assert adjusted_rand_score(y, labels) > 0.9
    np.testing.assert_array_equal(labels, scan_clusters(x, 4, seed=seed))


def test_scan_neighbours_and_errors():
    x, _ = _blobs(n=50)
    knn = scan_neighbours(x, 5)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_array_equal(np.sort(knn, 1), np.sort(np.argsort(d, 1)[:, :5], 1))
    with pytest.raises(ALRunnerError, match=r"n_clusters must be in \[1, 50\]"):
        scan_clusters(x, 51)
    with pytest.raises(ALRunnerError, match="typiclust_scan: heads must be a positive integer"):
        get_strategy("typiclust_scan", heads=0)


def test_typiclust_scan_picks_typical_points_of_uncovered_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.normal(scale=0.3, size=(40, 2)),
            rng.normal(scale=0.5, size=(20, 2)) + [10, 10],
            rng.normal(scale=0.5, size=(12, 2)) + [-10, 10],
        ]
    ).astype(np.float32)
    truth = np.repeat([0, 1, 2], [40, 20, 12])
    strategy = get_strategy("typiclust_scan")
    state = PoolState(np.array([0]), len(x), 3, representation=x)  # cluster A is covered
    picks = strategy.select(state, 2, np.random.default_rng(0))  # |L| + k = 3 SCAN clusters
    assert adjusted_rand_score(truth, strategy.clusters(x, 3)) == 1.0
    assert 40 <= picks[0] < 60 and 60 <= picks[1] < 72  # largest uncovered first, then C
    members = np.arange(40, 60)
    dist = np.sqrt(((x[members][:, None] - x[members][None]) ** 2).sum(-1))
    typicality = 1 / (np.sort(dist, axis=1)[:, 1:11].mean(1) + 1e-5)
    assert picks[0] == members[np.argmax(typicality)]
