"""TypiClust on SCAN clusters: the reference runner's ``typiclust_dc`` variant.

The TypiClust selection (most typical point of the largest uncovered cluster) unchanged, but
the clusters come from SCAN (a clustering head trained on the representation's nearest
neighbours, :func:`al_runner.embeddings.scan.scan_clusters`) instead of k-means.
"""

from __future__ import annotations

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.strategies.base import check_number
from al_runner.strategies.typiclust import TypiClust

__all__ = ["TypiClustSCAN"]


class TypiClustSCAN(TypiClust):
    """TypiClust whose clusters are SCAN's, not k-means'.

    Parameters
    ----------
    k_nn, max_clusters, min_cluster_size : int
        As :class:`~al_runner.strategies.typiclust.TypiClust`.
    neighbours : int
        Nearest neighbours SCAN mines per point (20).
    epochs : int
        SCAN passes over the pool per clustering (at least ``min_steps`` steps).
    min_steps : int
        Minimum SCAN steps, for small pools.
    heads : int
        SCAN heads trained together (the lowest-loss one is used).
    entropy_weight : float
        SCAN's entropy weight (5).
    scan_seed : int
        Added to the round's seed (drawn from the round's generator, so a resumed run
        clusters identically and other seeds differently).
    """

    name = "typiclust_scan"
    reference = (
        "Hacohen, Dekel & Weinshall, Active Learning on a Budget, ICML 2022 (TypiClust, SCAN "
        "variant); Van Gansbeke et al., SCAN: Learning to Classify Images without Labels, "
        "ECCV 2020"
    )

    def __init__(
        self,
        k_nn: int = 20,
        max_clusters: int = 500,
        min_cluster_size: int = 5,
        neighbours: int = 20,
        epochs: int = 5,
        min_steps: int = 300,
        heads: int = 5,
        entropy_weight: float = 5.0,
        scan_seed: int = 0,
    ) -> None:
        super().__init__(k_nn=k_nn, max_clusters=max_clusters, min_cluster_size=min_cluster_size)
        for key, value in (
            ("neighbours", neighbours),
            ("epochs", epochs),
            ("min_steps", min_steps),
            ("heads", heads),
        ):
            if int(value) != value or value < 1:
                raise ALRunnerError(
                    f"typiclust_scan: {key} must be a positive integer, got {value!r}"
                )
        self.neighbours = int(neighbours)
        self.epochs = int(epochs)
        self.min_steps = int(min_steps)
        self.heads = int(heads)
        check_number("typiclust_scan", "entropy_weight", entropy_weight, low=0)
        check_number("typiclust_scan", "scan_seed", scan_seed, low=0, integer=True)
        self.entropy_weight = float(entropy_weight)
        self.scan_seed = int(scan_seed)
        self._knn: tuple[np.ndarray, np.ndarray] | None = None
        self._scan: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    def clusters(self, x: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
        """SCAN cluster ids of ``x``.

        Neighbours are cached per representation, labels per cluster count and round seed (so
        that runs of other seeds cluster differently).
        """
        from al_runner.embeddings.scan import scan_clusters, scan_neighbours

        key = (id(x), int(n_clusters), int(seed))
        if key not in self._scan:
            if self._knn is None or self._knn[0] is not x:
                self._knn = (x, scan_neighbours(x, self.neighbours))
            labels = scan_clusters(
                x,
                n_clusters,
                neighbours=self.neighbours,
                epochs=self.epochs,
                min_steps=self.min_steps,
                heads=self.heads,
                entropy_weight=self.entropy_weight,
                seed=(self.scan_seed + int(seed)) % 2**31,
                knn=self._knn[1],
            )
            self._scan = {key: (x, labels)}  # keep x alive so that id(x) stays unique
        return self._scan[key][1]
