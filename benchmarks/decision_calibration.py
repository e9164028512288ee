"""Are palm_bayes's decisions calibrated? Learned curve prior vs the fixed random walk.

LCDB curves are split BY DATASET into a learning part and a held-out part (the learners of one
dataset play the strategies). A curve prior is learned on the learning part
(``pb.learn_prior``), or read from ``--prior-file``; every held-out curve is then cut into a
pilot (``--pilot-seeds`` seeds, budgets up to 10%, 20% and 40% of its final budget) and fitted
once; the same posterior is queried with the learned prior and with the old random walk
(``prior="brownian"``, sd 0.3). Truth: the mean over all seeds of the full curve.

Printed per prior and cut: forecast MAE at the final budget (and least squares', last value's),
90% interval coverage; labels needed for the accuracy the curve reaches at ~2.5x the pilot's
last budget (truth: where the seed-mean curve first reaches it, interpolated in log budget;
90% coverage, median |log ratio|, share with a finite median; for all targets and for the
rising ones, at least 0.01 above the pilot's last level); and for every pair
of curves on a dataset the Brier score of P(A beats B) at 1x, 2x, 5x the pilot's last budget and
at the final budget, with a reliability table. ``--curves FILE`` evaluates on other curves
(e.g. al_runner output) instead of held-out LCDB datasets. ``--baselines`` adds the
least-squares curve families of the literature and proper scores (CRPS, log density) for every
method at 1x/2x/5x/final (``baselines.py``), written to ``--json`` under ``--bed``.

    python benchmarks/decision_calibration.py --learn-datasets 60 --test-datasets 40
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import baselines
import numpy as np
import pandas as pd
import xarray as xr
from _common import covers, print_table
from tqdm.auto import tqdm

import palm_bayes as pb
from palm_bayes.data.contract import atomic_write
from palm_bayes.data.lcdb import lcdb_curves
from palm_bayes.data.load import curves_to_frame, load_curves
from palm_bayes.learn.prior import prefix_cases
from palm_bayes.model.curve import labels_for_accuracy

BINS = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
#: A labels-needed target counts as "rising" when it lies this far above the pilot's last level.
RISING = 0.01


def split_datasets(curves: xr.Dataset, n_learn: int, n_test: int, seed: int):
    """Dataset labels for learning and for testing, disjoint, drawn at random."""
    names = np.array(sorted(curves["dataset"].to_numpy().tolist()))
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    test = names[:n_test]
    learn = names[n_test : n_test + n_learn]
    return list(learn), list(test)


def truth_at(curve: pd.DataFrame, budgets: np.ndarray) -> np.ndarray:
    """Seed-mean accuracy, interpolated linearly in log budget (NaN outside the curve)."""
    lb = np.log(curve["budget"].to_numpy())
    out = np.interp(np.log(budgets), lb, curve["truth"].to_numpy(), left=np.nan, right=np.nan)
    return out


def first_crossing(budgets: pd.Series, truth: pd.Series, tau: float) -> float:
    """Labels at which the seed-mean curve first reaches ``tau``, linear in log budget.

    Searched over the whole curve: a target the curve already reached inside the pilot's
    budgets is reached there (the model answers such targets from the pilot's fit too).
    """
    b, y = np.log(budgets.to_numpy(float)), truth.to_numpy(float)
    hit = np.flatnonzero(y >= tau)
    if not hit.size:
        return np.inf
    k = int(hit[0])
    if k == 0:
        return float(np.exp(b[0]))
    w = (tau - y[k - 1]) / (y[k] - y[k - 1])
    return float(np.exp(b[k - 1] + w * (b[k] - b[k - 1])))


def labels_scores(lab: pd.DataFrame, truth: str = "true_labels") -> dict[str, float]:
    """90% coverage, median |log(median / true)| (inf medians count) and finite medians."""
    ratio = np.abs(np.log(lab["labels_median"] / lab[truth]))
    within5 = lab[truth] <= 5 * lab["pilot_last"]
    inside = covers(lab["labels_lower"], lab[truth], lab["labels_upper"])
    return {
        "lab_cover90": inside.mean(),
        "lab_med_abs_log": ratio.median(),
        "lab_finite": np.isfinite(lab["labels_median"]).mean(),
        "lab_finite_within5x": np.isfinite(lab["labels_median"][within5]).mean(),
    }


def evaluate_chunk(fit, priors: dict, truths: pd.DataFrame, lsq, seed: int) -> tuple[list, list]:
    """Per-curve forecast/labels rows and per-pair P(A beats B) rows of one fitted chunk."""
    curve_rows, pair_rows = [], []
    const = fit.idata.constant_data
    for pilot_ds, group in truths.groupby("pilot_dataset"):
        embedding = group["embedding"].iloc[0]
        here = const.sel(dataset=pilot_ds, embedding=embedding)
        strategies = [s for s in group["strategy"].unique() if bool(here["fitted"].sel(strategy=s))]
        if not strategies:
            continue
        sub = {s: group[group["strategy"] == s].sort_values("budget") for s in strategies}
        last = {s: float(here["last_budget"].sel(strategy=s)) for s in strategies}
        final = {s: float(sub[s]["budget"].max()) for s in strategies}
        for name, prior in priors.items():
            view = fit.with_prior(prior).select({"dataset": pilot_ds, "strategy": strategies})
            # forecasts at the final budget, labels needed for the level reached at ~2.5x
            finals = np.array([final[s] for s in strategies])
            fc = view.forecast(np.unique(finals), seed=seed)
            taus, true_labels, after_pilot = {}, {}, {}
            for s in strategies:
                c = sub[s]
                later = c[c["budget"] >= 2.5 * last[s]]
                if len(later) and 0 < later["truth"].iloc[0] < 1:
                    taus[s] = float(later["truth"].iloc[0])
                    true_labels[s] = first_crossing(c["budget"], c["truth"], taus[s])
                    reach = c[(c["truth"] >= taus[s]) & (c["budget"] > last[s])]
                    after_pilot[s] = float(reach["budget"].min())
            tau_arr = xr.DataArray(
                [[taus.get(s, 0.5)] for s in strategies],
                dims=("strategy", "embedding"),
                coords={"strategy": strategies, "embedding": [embedding]},
            ).expand_dims(dataset=[pilot_ds])
            need = view.labels_needed(tau_arr, seed=seed)
            for s in strategies:
                sel = {"dataset": pilot_ds, "strategy": s, "embedding": embedding}
                f = fc.sel(sel).sel(budget=final[s])
                n = need.sel(sel)
                truth_final = float(sub[s]["truth"].iloc[-1])
                row = {
                    "prior": name,
                    "dataset": group["dataset"].iloc[0],
                    "cut": float(group["cut"].iloc[0]),
                    "strategy": s,
                    "truth": truth_final,
                    "median": float(f["median"]),
                    "lower": float(f["lower"]),
                    "upper": float(f["upper"]),
                    "last": float(sub[s]["last_value"].iloc[0]),
                    "ratio_final": final[s] / last[s],
                }
                if name == next(iter(priors)):
                    p = lsq.sel(sel)
                    args = {k: float(p[k]) for k in ("A_max", "delta", "alpha", "beta")}
                    row["lsq"] = float(pb.palm_curve(final[s], b=float(p["b"]), **args))
                    if s in taus:
                        row["lsq_labels"] = float(
                            labels_for_accuracy(taus[s], b=float(p["b"]), **args)
                        )
                if s in taus:
                    row |= {
                        "tau": taus[s],
                        "true_labels": true_labels[s],
                        "true_labels_after_pilot": after_pilot[s],
                        "labels_median": float(n["median"]),
                        "labels_lower": float(n["lower"]),
                        "labels_upper": float(n["upper"]),
                        "pilot_last": last[s],
                    }
                curve_rows.append(row)
            # pairs at 1x, 2x, 5x the pilot's last budget and at the final budget
            if len(strategies) < 2:
                continue
            base = min(last.values())
            common_final = min(final.values())
            budgets = {"1x": base, "2x": 2 * base, "5x": 5 * base, "final": common_final}
            budgets = {k: v for k, v in budgets.items() if v <= common_final}
            values = np.unique(list(budgets.values()))
            wm = view.win_matrix(values, seed=seed)
            for i, a in enumerate(strategies):
                for b in strategies[i + 1 :]:
                    ta = truth_at(sub[a], values)
                    tb = truth_at(sub[b], values)
                    for label, v in budgets.items():
                        k = int(np.flatnonzero(values == v)[0])
                        if not (np.isfinite(ta[k]) and np.isfinite(tb[k])) or ta[k] == tb[k]:
                            continue
                        p = float(
                            wm.sel(
                                strategy=a, opponent=b, dataset=pilot_ds, embedding=embedding
                            ).isel(budget=k)
                        )
                        pair_rows.append(
                            {"prior": name, "cut": float(group["cut"].iloc[0]), "at": label,
                             "p": p, "won": float(ta[k] > tb[k])}
                        )  # fmt: skip
    return curve_rows, pair_rows


def run(
    curves: xr.Dataset, prior: pb.CurvePrior, args, baseline_rows: tuple[list, list] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the held-out pilots and query them with both priors.

    With ``baseline_rows``, every method's rows of ``baselines.chunk_rows`` are appended to it.
    """
    pilots, truths = prefix_cases(curves, args.cuts, args.pilot_seeds)
    full = curves_to_frame(curves).dropna(subset=["accuracy"])
    mean = full.groupby(["dataset", "strategy", "embedding", "budget"], as_index=False)[
        "accuracy"
    ].mean()
    truths = truths[["dataset", "strategy", "embedding", "cut", "pilot_dataset"]].drop_duplicates()
    truths = truths.merge(
        mean.rename(columns={"accuracy": "truth"}), on=["dataset", "strategy", "embedding"]
    )
    pilot_frame = curves_to_frame(pilots).dropna(subset=["accuracy"])
    last_value = (
        pilot_frame.groupby(["dataset", "strategy", "embedding", "budget"])["accuracy"].mean()
        .groupby(level=[0, 1, 2]).last().rename("last_value").reset_index()
        .rename(columns={"dataset": "pilot_dataset"})
    )  # fmt: skip
    truths = truths.merge(last_value, on=["pilot_dataset", "strategy", "embedding"])
    priors = {
        getattr(args, "prior_name", "learned"): prior,
        "brownian": pb.CurvePrior.brownian(0.3),
    }
    for item in args.also_prior or []:
        name, _, path = item.partition("=")
        priors[name] = pb.load_prior(path)
    names = pilots["dataset"].to_numpy().tolist()
    curve_rows, pair_rows = [], []
    for start in tqdm(
        range(0, len(names), args.chunk), desc="held-out pilot datasets", unit="x" + str(args.chunk)
    ):
        part = pilots.sel(dataset=names[start : start + args.chunk])
        part = load_curves(part.where(part["accuracy"].notnull()))
        rows = truths[truths["pilot_dataset"].isin(part["dataset"].to_numpy().tolist())]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lsq = pb.fit_least_squares(part)
            if getattr(args, "no_palm", False):  # the baselines only
                bc, bp = baselines.chunk_rows(None, priors, rows, pilot_frame, lsq, args.seed)
                baseline_rows[0].extend(bc)
                baseline_rows[1].extend(bp)
                continue
            fit = pb.fit(
                part,
                prior=prior,
                seed=args.seed + start,
                progress=False,
                draws=args.draws,
                tune=args.draws,
                workers=getattr(args, "workers", None),
            )
        c, p = evaluate_chunk(fit, priors, rows, lsq, args.seed)
        if baseline_rows is not None:
            bc, bp = baselines.chunk_rows(fit, priors, rows, pilot_frame, lsq, args.seed)
            baseline_rows[0].extend(bc)
            baseline_rows[1].extend(bp)
        curve_rows += c
        pair_rows += p
    return pd.DataFrame(curve_rows), pd.DataFrame(pair_rows)


def score_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Forecast and labels-needed scores per prior and cut."""
    out = []
    for (prior, cut), g in frame.groupby(["prior", "cut"]):
        has = g["tau"].notna() if "tau" in g else pd.Series(False, index=g.index)
        lab = g[has]
        # rising: the target lies at least 0.01 above the pilot's last seed mean
        rising = lab[lab["tau"] - lab["last"] >= RISING]
        row = {
            "prior": prior,
            "cut": cut,
            "curves": len(g),
            "MAE": (g["median"] - g["truth"]).abs().mean(),
            "cover90": covers(g["lower"], g["truth"], g["upper"]).mean(),
            **labels_scores(lab),
            "rising": len(rising),
            **{f"rising_{k[4:]}": v for k, v in labels_scores(rising).items()},
        }
        if "true_labels_after_pilot" in lab:  # the first harness's truth, for comparison
            old = labels_scores(lab, "true_labels_after_pilot")
            row |= {"old_cover90": old["lab_cover90"], "old_med_abs_log": old["lab_med_abs_log"]}
        out.append(row)
    scores = pd.DataFrame(out)
    ref = frame.dropna(subset=["lsq"]).groupby("cut").apply(
        lambda g: pd.Series({"lsq_MAE": (g["lsq"] - g["truth"]).abs().mean(),
                             "last_MAE": (g["last"] - g["truth"]).abs().mean()}),
        include_groups=False,
    )  # fmt: skip
    scores = scores.join(ref, on="cut")
    scores["MAE_vs_lsq"] = scores["MAE"] / scores["lsq_MAE"]
    return scores


def score_pairs(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Brier scores per prior, cut and distance; reliability table per prior and distance."""
    brier = pairs.assign(
        sq=(pairs["p"] - pairs["won"]) ** 2, conf=(pairs["p"] > 0.9) | (pairs["p"] < 0.1)
    )
    brier["right"] = (brier["p"] > 0.5) == (brier["won"] > 0.5)
    table = brier.groupby(["prior", "at"]).agg(
        pairs=("sq", "size"), brier=("sq", "mean"),
        confident=("conf", "sum"),
        confident_right=("right", lambda r: r[brier.loc[r.index, "conf"]].mean()),
    )  # fmt: skip
    pairs = pairs.assign(bin=pd.cut(pairs["p"], BINS, include_lowest=True))
    rel = pairs.groupby(["prior", "at", "bin"], observed=True).agg(
        n=("p", "size"), stated=("p", "mean"), observed=("won", "mean")
    )
    return table, rel


def plot_reliability(pairs: pd.DataFrame, path: Path) -> None:
    """Reliability diagram: stated P(A beats B) vs observed frequency, per prior."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, at in zip(axes, ["2x", "final"], strict=True):
        colours = dict(
            zip(
                pairs["prior"].unique(),
                plt.rcParams["axes.prop_cycle"].by_key()["color"],
                strict=False,
            )
        )
        for prior, colour in colours.items():
            g = pairs[(pairs["prior"] == prior) & (pairs["at"] == at)]
            g = g.assign(bin=pd.cut(g["p"], BINS, include_lowest=True))
            rel = g.groupby("bin", observed=True).agg(
                stated=("p", "mean"), observed=("won", "mean"), n=("p", "size")
            )
            rel = rel[rel["n"] >= 10]
            ax.plot(rel["stated"], rel["observed"], "o-", color=colour,
                    label=f"{prior} (Brier {((g['p'] - g['won']) ** 2).mean():.3f})")  # fmt: skip
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_title(f"P(A beats B) at {at} budget")
        ax.set_xlabel("stated probability")
        ax.legend(loc="upper left", fontsize=8)
    axes[0].set_ylabel("observed frequency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_baselines(rows: tuple[list, list], args, seconds: float) -> None:
    """Score every method (``baselines.score``), print it, write CSVs and merge into --json."""
    curves, pairs = pd.DataFrame(rows[0]), pd.DataFrame(rows[1])
    curves.to_csv(f"{args.out}_baseline_curves.csv", index=False)
    pairs.to_csv(f"{args.out}_baseline_pairs.csv", index=False)
    table = baselines.score(curves, pairs)
    print("\nEvery method: forecasts (MAE, 90% coverage, CRPS, log density) and pairs (Brier)")
    print_table(table, index=False)
    if not args.json:
        return
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[args.bed] = {
        "curves": args.curves,
        "cuts": args.cuts,
        "pilot_seeds": args.pilot_seeds,
        "draws_per_chain": args.draws,
        "seconds": round(seconds, 1),
        "scores": json.loads(table.to_json(orient="records")),
    }
    text = json.dumps(results, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--learn-datasets", type=int, default=60)
    parser.add_argument("--test-datasets", type=int, default=40)
    parser.add_argument("--cuts", type=float, nargs="+", default=[0.1, 0.2, 0.4])
    parser.add_argument("--pilot-seeds", type=int, default=3, help="0 for all seeds")
    parser.add_argument("--prior-file", default=None, help="skip learning: use this prior")
    parser.add_argument(
        "--cases",
        default=None,
        help="learn from these saved pilot cases (benchmarks/learn_default_prior.py "
        "--cases-out), restricted to the learning datasets",
    )
    parser.add_argument("--save-prior", default=None, help="write the learned prior here")
    parser.add_argument(
        "--also-prior",
        nargs="+",
        default=None,
        metavar="NAME=FILE",
        help="query the same pilot fits with these priors too",
    )
    parser.add_argument(
        "--curves", nargs="+", default=None, help="evaluate on these curve files instead"
    )
    parser.add_argument(
        "--baselines", action="store_true", help="score the curve families and every method"
    )
    parser.add_argument("--json", default=None, help="with --baselines: write the scores here")
    parser.add_argument("--bed", default="bed", help="the key of this run in --json")
    parser.add_argument("--prior-name", default="learned", help="label of the main prior")
    parser.add_argument(
        "--no-palm", action="store_true", help="with --baselines: skip the PALM fits (fast)"
    )
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument(
        "--workers", type=int, default=None, help="spread each chunk's fits over Ray tasks"
    )
    parser.add_argument("--draws", type=int, default=1000, help="draws (and tuning) per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="decision_calibration", help="prefix of output files")
    args = parser.parse_args()
    args.pilot_seeds = args.pilot_seeds or None
    start = time.perf_counter()
    if args.curves:
        # a file of one dataset is one "dataset" (its stem), its strategies the contenders;
        # a file of several keeps their labels
        frames = []
        for f in args.curves:
            frame = curves_to_frame(load_curves(f))
            if frame["dataset"].nunique() == 1:
                frame = frame.assign(dataset=Path(f).stem)
            frames.append(frame)
        test_curves = load_curves(pd.concat(frames, ignore_index=True))
        lcdb = lcdb_curves(min_budgets=10) if not args.prior_file else None
        learn = sorted(lcdb["dataset"].to_numpy().tolist()) if lcdb is not None else []
    else:
        lcdb = lcdb_curves(min_budgets=10)
        learn, test = split_datasets(lcdb, args.learn_datasets, args.test_datasets, args.seed)
        test_curves = lcdb.sel(dataset=test)
    if args.prior_file:
        prior = pb.load_prior(args.prior_file)
    else:
        cases = None
        if args.cases:
            cases = pd.read_pickle(args.cases)
            cases = cases[cases["dataset"].isin(learn)]
            if not args.curves and set(cases["dataset"]) & set(test):
                raise SystemExit("the learning cases contain held-out datasets")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prior = pb.learn_prior(
                lcdb.sel(dataset=learn),
                seed=args.seed,
                source=f"LCDB ({len(learn)} datasets)",
                cases=cases,
            )
        print(f"learned {prior} in {time.perf_counter() - start:.0f} s")
        print(prior.summary().round(3).to_string())
        if args.save_prior:
            prior.save(args.save_prior)
    extra = ([], []) if args.baselines else None
    if args.no_palm and extra is None:
        raise SystemExit("--no-palm needs --baselines")
    curves, pairs = run(test_curves, prior, args, extra)
    if args.no_palm:
        write_baselines(extra, args, time.perf_counter() - start)
        return
    curves.to_csv(f"{args.out}_curves.csv", index=False)
    pairs.to_csv(f"{args.out}_pairs.csv", index=False)
    scores = score_curves(curves)
    brier, rel = score_pairs(pairs)
    print("\nForecasts at the final budget and labels needed")
    print_table(scores, index=False)
    print("\nP(A beats B): Brier score (0.25 = coin) and confident answers (P > 0.9 or < 0.1)")
    print_table(brier)
    print("\nReliability (bins of stated P)")
    print_table(rel)
    plot_reliability(pairs, Path(f"{args.out}_reliability.png"))
    if extra is not None:
        write_baselines(extra, args, time.perf_counter() - start)
    summary = {"seconds": time.perf_counter() - start, "prior": prior.meta}
    Path(f"{args.out}_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"\n{time.perf_counter() - start:.0f} s; files {args.out}_*")


if __name__ == "__main__":
    main()
