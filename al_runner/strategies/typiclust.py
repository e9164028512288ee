"""TypiClust: typical points of uncovered clusters (Hacohen et al., ICML 2022)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.knn import kmeans_pp, nearest_sqdist
from al_runner.strategies.base import PoolState, Strategy, check_number

TYPICALITY = ("distance", "squared")


def typicality(x: np.ndarray, k_nn: int, kind: str = "distance") -> np.ndarray:
    """Typicality ``1 / (mean distance to the k nearest neighbours + 1e-5)`` within ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` points (one cluster).
    k_nn : int
        Neighbours (clipped to ``1 .. n - 1``).
    kind : {"distance", "squared"}
        Mean plain L2 distance (the paper's Eq. 1) or mean *squared* L2 distance (what the
        authors' code computes from faiss's squared distances).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` typicality, higher is denser.
    """
    if kind not in TYPICALITY:
        raise ALRunnerError(f"typicality must be one of {TYPICALITY}, got {kind!r}")
    if x.shape[0] < 2:
        return np.ones(x.shape[0])
    k_nn = int(min(max(k_nn, 1), x.shape[0] - 1))
    d2, _ = nearest_sqdist(x, x, k_nn + 1)
    d2 = np.maximum(d2[:, 1:], 0.0)  # column 0 is the point itself
    dist = d2 if kind == "squared" else np.sqrt(d2)
    return 1.0 / (dist.mean(axis=1) + 1e-5)


def kmeans_clusters(x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Default TypiClust clustering: k-means++ seeding and 50 Lloyd iterations."""
    return kmeans_pp(x, n_clusters, seed)[0]


class TypiClust(Strategy):
    """The most typical point of the largest uncovered cluster, ``k`` times.

    Cluster the representation into ``|L| + k`` clusters (at most ``max_clusters``) with
    k-means++ seeded from the round's generator (different seeds cluster differently; a
    resumed run reclusters identically), then repeatedly take the cluster with the fewest
    labelled points (ties: the largest) and label its most typical unlabelled point.

    Parameters
    ----------
    k_nn : int
        Neighbours of the typicality (20 in the paper; half the cluster when smaller).
    max_clusters : int
        Cap on the number of k-means clusters (500 in the paper).
    min_cluster_size : int
        Clusters of this size or smaller are skipped (5 in the paper) while larger ones remain.
    typicality : {"distance", "squared"}
        Inverse mean L2 distance to the neighbours (the paper) or inverse mean squared
        distance (the authors' code).
    """

    name = "typiclust"
    needs_model = False
    uses_representation = True
    reference = "Hacohen, Dekel & Weinshall, Active Learning on a Budget, ICML 2022"
    cluster_fn: Callable[[np.ndarray, int, int], np.ndarray] = staticmethod(kmeans_clusters)

    def __init__(
        self,
        k_nn: int = 20,
        max_clusters: int = 500,
        min_cluster_size: int = 5,
        typicality: str = "distance",
    ) -> None:
        if typicality not in TYPICALITY:
            raise ALRunnerError(f"typiclust: typicality must be one of {TYPICALITY}")
        name = type(self).name
        check_number(name, "k_nn", k_nn, low=1, integer=True)
        check_number(name, "max_clusters", max_clusters, low=1, integer=True)
        check_number(name, "min_cluster_size", min_cluster_size, low=0, integer=True)
        self.k_nn = k_nn
        self.max_clusters = max_clusters
        self.min_cluster_size = min_cluster_size
        self.typicality = typicality
        self._cache: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def clusters(self, x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
        """Cluster ids of ``x`` (cached per representation, cluster count and seed)."""
        key = (id(x), int(n_clusters), int(seed))
        if key not in self._cache:
            self._cache = {key: (x, type(self).cluster_fn(x, int(n_clusters), int(seed)))}
        return self._cache[key][1]

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        x = state.features()
        n_clusters = min(state.labelled.size + k, self.max_clusters, x.shape[0])
        labels = self.clusters(x, n_clusters, int(rng.integers(2**31)))
        sizes = np.bincount(labels, minlength=n_clusters)
        covered = np.bincount(labels[state.labelled], minlength=n_clusters)
        available = np.ones(x.shape[0], dtype=bool)
        available[state.labelled] = False
        eligible = sizes > self.min_cluster_size
        if not eligible.any():
            eligible = sizes > 0
        picks: list[int] = []
        for _ in range(k):
            remaining = np.bincount(labels[available], minlength=n_clusters)
            ok = eligible & (remaining > 0)
            if not ok.any():
                ok = remaining > 0
            # fewest labelled first, then the largest cluster
            order = np.lexsort((-sizes, covered))
            cluster = int(order[ok[order]][0])
            members = np.flatnonzero((labels == cluster) & available)
            typ = typicality(x[members], min(self.k_nn, members.size // 2), self.typicality)
            best = int(members[np.argmax(typ)])
            picks.append(best)
            available[best] = False
            covered[cluster] += 1
        return np.asarray(picks)
