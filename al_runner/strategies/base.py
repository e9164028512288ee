"""The strategy interface and the pool state that strategies read.

A strategy is a small object with one method, ``select(state, k, rng) -> pool indices``.
:class:`PoolState` hands it what it may need, computed lazily and cached for the round: the
current model's softmax on the unlabelled pool, MC-dropout samples (trunk computed once, head
sampled ``T`` times), an ensemble's softmax (extra members trained on the labelled set), the
model's embeddings, the labels of the labelled set, and a fixed representation of the pool (the
dataset's embedding) for representation-based strategies. Tests build a state from arrays.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from al_runner.errors import ALRunnerError

__all__ = ["PoolState", "Strategy", "check_number", "top_k"]


class PoolState:
    """What a strategy may read about the pool in one round.

    Parameters
    ----------
    labelled : numpy.ndarray
        Labelled pool indices (in acquisition order).
    n_pool : int
        Pool size.
    n_classes : int
        Number of classes.
    learner : Learner, optional
        The model trained on ``labelled`` this round (None at cold start).
    representation : numpy.ndarray, optional
        Fixed ``(n_pool, d)`` features (the dataset's embedding) for TypiClust/ProbCover;
        when None they fall back to the model's embeddings.
    proba, embeddings, mc_proba, ensemble_proba : numpy.ndarray, optional
        Precomputed arrays over the *whole pool* (``(n_pool, C)``, ``(n_pool, d)``,
        ``(T, n_pool, C)``, ``(M, n_pool, C)``) in place of a learner, e.g. in tests.
    labelled_y : numpy.ndarray, optional
        Labels of ``labelled`` (same order), for strategies that read them (DCoM).
    seed : int
        Seed of MC-dropout masks and of ensemble members.
    """

    def __init__(
        self,
        labelled: np.ndarray,
        n_pool: int,
        n_classes: int,
        *,
        learner: Any = None,
        representation: np.ndarray | None = None,
        proba: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
        mc_proba: np.ndarray | None = None,
        ensemble_proba: np.ndarray | None = None,
        labelled_y: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        self.labelled = np.asarray(labelled, dtype=np.int64)
        self.n_pool = int(n_pool)
        self.n_classes = int(n_classes)
        self.learner = learner
        self.representation = representation
        self.seed = seed
        self._proba_all = proba
        self._emb_all = embeddings
        self._mc_all = mc_proba
        self._ens_all = ensemble_proba
        self.labelled_y = None if labelled_y is None else np.asarray(labelled_y, dtype=np.int64)
        if self.labelled_y is not None and self.labelled_y.shape != self.labelled.shape:
            raise ALRunnerError(
                f"labelled_y has shape {self.labelled_y.shape}, labelled {self.labelled.shape}"
            )
        mask = np.ones(self.n_pool, dtype=bool)
        mask[self.labelled] = False
        self.unlabelled = np.flatnonzero(mask)
        self.cache: dict[str, Any] = {}

    @property
    def has_model(self) -> bool:
        """Whether model outputs (probabilities, embeddings) are available."""
        return self.learner is not None or self._proba_all is not None or self._emb_all is not None

    def _need_model(self, what: str) -> None:
        if not self.has_model:
            raise ALRunnerError(f"{what} needs a trained model (no model at cold start)")

    def embeddings(self) -> np.ndarray:
        """Model embeddings of the whole pool ``(n_pool, d)`` (cached)."""
        if self._emb_all is None:
            self._need_model("embeddings")
            if self.learner is None:
                raise ALRunnerError("this state has probabilities but no embeddings")
            self._emb_all = self.learner.embed(np.arange(self.n_pool))
        return self._emb_all

    def proba(self) -> np.ndarray:
        """Softmax of the model on the unlabelled pool ``(n_unlabelled, C)`` (cached)."""
        if "proba" not in self.cache:
            if self._proba_all is not None:
                self.cache["proba"] = self._proba_all[self.unlabelled]
            else:
                self._need_model("probabilities")
                h = self.embeddings()[self.unlabelled]
                self.cache["proba"] = self.learner.head_proba(h)
        return self.cache["proba"]

    def pool_proba(self) -> np.ndarray:
        """Softmax of the model on the *whole* pool ``(n_pool, C)`` (cached)."""
        if "pool_proba" not in self.cache:
            if self._proba_all is not None:
                self.cache["pool_proba"] = self._proba_all
            else:
                self._need_model("probabilities")
                self.cache["pool_proba"] = self.learner.head_proba(self.embeddings())
        return self.cache["pool_proba"]

    def ensemble_proba(self, members: int, bootstrap: bool | None = None) -> np.ndarray:
        """Softmax of an ensemble on the unlabelled pool ``(M, n_unlabelled, C)`` (cached).

        Member 0 is this round's model; members ``1 .. M-1`` are copies of the learner trained
        from scratch on the labelled set with other seeds (derived from ``seed``).

        Parameters
        ----------
        members : int
            Ensemble size ``M`` (>= 2).
        bootstrap : bool, optional
            Train members ``1 ..`` on bootstrap resamples of the labelled set. Default: only for
            the deterministic ``linear`` learner, whose members would otherwise be identical.
        """
        members = int(members)
        if members < 2:
            raise ALRunnerError(f"an ensemble needs members >= 2, got {members}")
        key = f"ens{members}/{bootstrap}"
        if key not in self.cache:
            if self._ens_all is not None:
                if self._ens_all.shape[0] < members:
                    raise ALRunnerError(
                        f"ensemble_proba holds {self._ens_all.shape[0]} members, asked {members}"
                    )
                self.cache[key] = self._ens_all[:members, self.unlabelled]
            else:
                self._need_model("an ensemble")
                self.cache[key] = self._train_ensemble(members, bootstrap)
        return self.cache[key]

    def _train_ensemble(self, members: int, bootstrap: bool | None) -> np.ndarray:
        import copy

        if bootstrap is None:
            bootstrap = getattr(self.learner, "name", "") == "linear"
        h = self.embeddings()[self.unlabelled]
        out = [self.learner.head_proba(h)]
        rng = np.random.default_rng([self.seed, 7919])
        for m in range(1, members):
            idx = self.labelled
            if bootstrap:
                idx = rng.choice(self.labelled, size=self.labelled.size, replace=True)
            member = copy.copy(self.learner)  # shares the bound data; fit() sets its own model
            member.fit(idx, seed=int(self.seed) * 31 + m)
            out.append(member.predict_proba(self.unlabelled))
        return np.stack(out)

    def mc_proba(self, samples: int) -> np.ndarray:
        """MC-dropout softmax samples on the unlabelled pool ``(T, n_unlabelled, C)``.

        The trunk runs once (cached embeddings); only the dropout + head is sampled.
        """
        key = f"mc{samples}"
        if key not in self.cache:
            if self._mc_all is not None:
                self.cache[key] = self._mc_all[:samples, self.unlabelled]
            else:
                self._need_model("MC dropout")
                h = self.embeddings()[self.unlabelled]
                self.cache[key] = self.learner.head_proba(h, samples=samples, seed=self.seed)
        return self.cache[key]

    def features(self) -> np.ndarray:
        """The fixed representation, or the model's embeddings when there is none."""
        if self.representation is not None:
            return self.representation
        return self.embeddings()


def check_number(
    strategy: str,
    name: str,
    value: Any,
    *,
    low: float,
    high: float | None = None,
    integer: bool = False,
    open_low: bool = False,
) -> None:
    """Raise a one-line error naming the strategy and parameter unless ``value`` fits.

    It must be a finite number ``>= low`` (``> low`` with ``open_low``), ``<= high`` when
    given, and a whole number when ``integer``.
    """
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value > low if open_low else value >= low)
    ok = ok and (high is None or value <= high) and (not integer or float(value).is_integer())
    if not ok:
        kind = "a whole number" if integer else "a number"
        bound = f"> {low}" if open_low else f">= {low}"
        span = f"{bound}" + (f" and <= {high}" if high is not None else "")
        raise ALRunnerError(f"{strategy}: {name} must be {kind} {span}, got {value!r}")


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` largest scores; ties broken at random by ``rng``.

    Parameters
    ----------
    scores : numpy.ndarray
        1-D scores (higher is picked first).
    k : int
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        ``k`` positions into ``scores``, best first.
    """
    perm = rng.permutation(scores.size)
    order = np.argsort(-scores[perm], kind="stable")
    return perm[order[:k]]


class Strategy:
    """Base class: subclasses implement :meth:`_select`; constructors only store arguments."""

    name: ClassVar[str] = ""
    needs_model: ClassVar[bool] = True
    uses_representation: ClassVar[bool] = False
    reference: ClassVar[str] = ""

    def select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        """Pick ``k`` unlabelled pool indices.

        Parameters
        ----------
        state : PoolState
        k : int
            Number of samples to label.
        rng : numpy.random.Generator
            The round's random generator.

        Returns
        -------
        numpy.ndarray
            ``k`` distinct pool indices, none already labelled.
        """
        k = int(k)
        if k < 1:
            raise ALRunnerError(f"{self.name}: k must be >= 1, got {k}")
        if k > state.unlabelled.size:
            raise ALRunnerError(
                f"{self.name}: asked for {k} samples but only {state.unlabelled.size} unlabelled"
            )
        no_features = self.uses_representation and state.representation is None
        if (self.needs_model or no_features) and not state.has_model:
            return rng.choice(state.unlabelled, size=k, replace=False)
        picks = np.asarray(self._select(state, k, rng), dtype=np.int64)
        assert picks.size == k and np.unique(picks).size == k, (self.name, picks)
        return picks

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
