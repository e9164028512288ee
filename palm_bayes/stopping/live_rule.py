"""The PALM stopping rule for a live AL run: refit the run's curve, stop on the verdict ``stop``.

``al-runner run ... --stop-when palm:target=0.85`` (or ``palm:cost_per_label=1,
value_per_point=200``) loads :class:`PalmStopRule` by name (al_runner imports nothing of
palm_bayes but the curves contract: it finds this rule as a plugin, ``module:Class``). The rule
has the interface of al_runner's stopping rules (``name``, ``needs_proba``, ``measure``,
``update``, ``describe``) without importing al_runner: every ``every`` rounds it fits PALM to
the run's curve so far (one strategy, one seed: its test-set ``accuracy`` or, with
``curve="label_free"``, its ``label_free_accuracy``) and asks :func:`palm_bayes.decisions.stop.stop`
for the verdict of continuing this strategy. With a ``target`` it stops once the target is
reached and little is left to gain by the end of the run's label budget (``budget``: al_runner
passes the run's final budget as ``context["final_budget"]``). It records the verdict and its
numbers (as ``stop_palm_*`` in the curves file); the decision of a round reads only those
records, so a resumed run (the fit is seeded by the run's seed and the round) reaches the same
verdicts.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from palm_bayes.decisions.stop import target_stop_says
from palm_bayes.errors import PalmInputError

__all__ = ["PalmStopRule"]

#: Fewest rounds before the first fit (an independent PALM fit has four parameters).
MIN_ROUNDS = 4


class PalmStopRule:
    """Stop when the PALM verdict of the run's own curve is ``stop``.

    Parameters
    ----------
    target : float, optional
        Target accuracy: stop once it is reached with probability >= ``threshold`` and the gain
        left by the run's budget exceeds ``tolerance`` with probability <= ``gain_risk``.
    cost_per_label, value_per_point : float, optional
        The cost model of :func:`palm_bayes.decisions.stop.stop` (give both or neither).
    rounds_ahead : float or str
        Horizons in rounds; a ``"1/3"`` string for several (the CLI's comma separates keys).
    epsilon : float
        Break-even gain per round without a cost model.
    threshold : float
        P(target reached) that stops.
    tolerance : float
        Gain (accuracy, fraction) by the run's budget that the target stop may leave.
    gain_risk : float
        The most P(gain left > ``tolerance``) at which the target stop stops.
    budget : float, optional
        The run's total label budget ``B`` (default: ``context["final_budget"]``, which al_runner
        gives: its initial set plus ``rounds - 1`` rounds).
    every : int
        Refit every ``every`` rounds (the verdict of other rounds is ``continue``).
    consecutive : int
        Stop only after this many refits in a row said ``stop`` (default 1: the first ``stop``
        ends the run; 2 or more guard against one noisy round).
    curve : {"test", "label_free"}
        Which recorded curve is fitted.
    draws, tune, chains : int
        NUTS settings of each refit (small: one curve).
    """

    name: ClassVar[str] = "palm"
    needs_proba: ClassVar[bool] = False
    primary: ClassVar[str] = "target"

    def __init__(
        self,
        target: float | None = None,
        cost_per_label: float | None = None,
        value_per_point: float | None = None,
        rounds_ahead: Any = "1/3",
        epsilon: float = 0.005,
        threshold: float = 0.7,
        tolerance: float = 0.01,
        gain_risk: float = 0.05,
        budget: float | None = None,
        every: int = 1,
        consecutive: int = 1,
        curve: str = "test",
        draws: int = 300,
        tune: int = 300,
        chains: int = 2,
    ) -> None:
        if curve not in ("test", "label_free"):
            raise PalmInputError(f"curve must be 'test' or 'label_free', got {curve!r}")
        self.target = target
        self.cost_per_label, self.value_per_point = cost_per_label, value_per_point
        self.rounds_ahead = tuple(float(r) for r in str(rounds_ahead).split("/") if r.strip())
        self.epsilon, self.threshold = float(epsilon), float(threshold)
        self.tolerance, self.gain_risk = float(tolerance), float(gain_risk)
        self.budget = None if budget is None else float(budget)
        self.every, self.curve = int(every), curve
        if self.every < 1:
            raise PalmInputError(f"every must be >= 1, got {every!r}")
        self.consecutive = int(consecutive)
        if self.consecutive < 1 or self.consecutive != consecutive:
            raise PalmInputError(f"consecutive must be a whole number >= 1, got {consecutive!r}")
        self.draws, self.tune, self.chains = int(draws), int(tune), int(chains)

    # ------------------------------------------------------------------ the rule's interface
    def measure(self, view: Any) -> dict[str, float]:
        """Fit the curve so far and record the verdict (NaN on rounds without a refit)."""
        nan = dict.fromkeys(
            ("palm_stop", "palm_probability", "palm_saved", "palm_gain", "palm_p_gain",
             "palm_p_target", "palm_p_gain_left", "palm_seconds"),
            float("nan"),
        )  # fmt: skip
        budgets = np.asarray(view.history.get("budget", []), float)
        key = "accuracy" if self.curve == "test" else "label_free_accuracy"
        acc = np.asarray(view.history.get(key, []), float)
        ok = np.isfinite(acc[: budgets.size])
        if ok.sum() < MIN_ROUNDS or (view.step + 1 - MIN_ROUNDS) % self.every:
            return nan
        t0 = time.perf_counter()
        fit, seed = self.fit(budgets[: acc.size][ok], acc[: budgets.size][ok], view)
        # a target every observed round reaches: fit.stop refuses it (a likely slip), so the
        # utility verdict comes without it and the target stop is weighed here, from its draws
        below = self.target is not None and float(acc[: budgets.size][ok].min()) >= self.target
        verdict = self.verdict(fit, seed, view, target=None if below else self.target)
        row = verdict.isel({d: 0 for d in verdict["verdict"].dims})
        first = row.isel(rounds_ahead=0)
        out = {
            "palm_stop": 1.0 if row["verdict"].item() == "stop" else 0.0,
            "palm_probability": float(row["probability"]),
            "palm_saved": float(row["expected_saved"]),
            "palm_gain": float(first["gain_mean"]),
            "palm_p_gain": float(first["p_gain"]),
            "palm_p_target": float(row["p_target_now"]) if "p_target_now" in row else np.nan,
            "palm_p_gain_left": (
                float(row["p_gain_to_budget"]) if "p_gain_to_budget" in row else np.nan
            ),
        }
        if below:
            p_now, p_left = self.target_probabilities(fit, view, seed)
            out |= {"palm_p_target": p_now, "palm_p_gain_left": p_left}
            if target_stop_says(p_now, p_left, self.threshold, self.gain_risk):
                out |= {"palm_stop": 1.0, "palm_probability": p_now}
        return out | {"palm_seconds": time.perf_counter() - t0}

    def update(self, view: Any) -> bool:
        """Stop when this round's refit and the ``consecutive - 1`` refits before said ``stop``."""
        verdicts = np.asarray(view.history.get("stop_palm_stop", []), float)
        if not (verdicts.size and verdicts[-1] == 1.0):
            return False
        refits = verdicts[np.isfinite(verdicts)]  # rounds without a refit record NaN
        return bool(refits.size >= self.consecutive and np.all(refits[-self.consecutive :] == 1.0))

    def describe(self, view: Any) -> str:
        """P(verdict) of the last refit."""
        p = np.asarray(view.history.get("stop_palm_probability", []), float)
        p = p[np.isfinite(p)]
        return f"P={p[-1]:.2f}" if p.size else ""

    # ------------------------------------------------------------------ the fit
    def run_budget(self, view: Any) -> float | None:
        """The run's total label budget: ``budget``, else the run's final budget (context)."""
        ctx = getattr(view, "context", {}) or {}
        given = self.budget if self.budget is not None else ctx.get("final_budget")
        return None if given is None else float(given)

    def fit(self, budgets: np.ndarray, accuracy: np.ndarray, view: Any) -> tuple[Any, int]:
        """PALM fit of one run's curve so far, and its seed (the run's seed and the round)."""
        import pandas as pd

        import palm_bayes as pb

        ctx = getattr(view, "context", {}) or {}
        frame = pd.DataFrame(
            {"strategy": str(ctx.get("strategy", "run")), "budget": budgets, "accuracy": accuracy}
        )
        if ctx.get("n_test"):
            frame["n_test"] = int(ctx["n_test"])
        b = ctx.get("labels_per_round") or float(np.median(np.diff(budgets)))
        curves = pb.load_curves(frame, labels_per_round=float(b))
        seed = int(ctx.get("seed", 0)) * 10_007 + int(view.step)
        fit = pb.fit(
            curves, seed=seed, chains=self.chains, draws=self.draws, tune=self.tune,
            cores=1, progress=False,
        )  # fmt: skip
        return fit, seed

    def verdict(self, fit: Any, seed: int, view: Any, target: float | None = None):
        """The :func:`palm_bayes.decisions.stop.stop` result of one run's fit (at ``target``)."""
        return fit.stop(
            target=target, cost_per_label=self.cost_per_label,
            value_per_point=self.value_per_point, rounds_ahead=self.rounds_ahead,
            epsilon=self.epsilon, budget=self.run_budget(view), threshold=self.threshold,
            tolerance=self.tolerance, gain_risk=self.gain_risk, seed=seed,
        )  # fmt: skip

    def target_probabilities(self, fit: Any, view: Any, seed: int) -> tuple[float, float]:
        """P(accuracy now >= target) and P(gain by the run's budget > tolerance), one curve.

        The draws of ``fit.stop`` (same seed; the budget ``B`` as it picks it), for a target
        that every observed round already reaches (which ``fit.stop`` refuses as a slip).
        """
        from palm_bayes.queries.forecast import forecast_draws

        const = fit.idata.constant_data
        last = float(const["last_budget"].to_numpy().ravel()[0])
        b = float(const["b"].to_numpy().ravel()[0])
        end = self.run_budget(view)
        if end is None or end <= last:
            end = last + max(self.rounds_ahead) * b
        draws = forecast_draws(fit, [last, end], seed=seed)
        arr = draws.transpose(..., "budget").to_numpy().reshape(-1, 2)
        left = arr[:, 1] - arr[:, 0]
        return float((arr[:, 0] >= self.target).mean()), float((left > self.tolerance).mean())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"
