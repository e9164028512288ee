"""Query strategies: a shared template for all, plus each one's defining property."""

import inspect
import re

import numpy as np
import pytest

pytest.importorskip("faiss")

from al_runner.errors import ALRunnerError
from al_runner.knn import kmeans_pp
from al_runner.strategies import STRATEGIES, PoolState, get_strategy, top_k
from al_runner.strategies.badge import gradient_factors, kmeans_pp_gradients
from al_runner.strategies.bald import mutual_information
from al_runner.strategies.coreset import k_center_greedy
from al_runner.strategies.dcom import DCoM, competence
from al_runner.strategies.ensemble_var import variation_ratio
from al_runner.strategies.entropy import entropy
from al_runner.strategies.probcover import max_coverage, purity_delta
from al_runner.strategies.typiclust import TypiClust, typicality


def _synthetic_state(n_pool=80, n_classes=4, labelled=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_classes, 6))
    y = rng.integers(n_classes, size=n_pool)
    x = (centres[y] + rng.normal(size=(n_pool, 6))).astype(np.float32)
    logits = x @ rng.normal(size=(6, n_classes))
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    mc = rng.dirichlet(np.ones(n_classes), size=(5, n_pool)) * 0.3 + 0.7 * proba[None]
    return PoolState(
        rng.choice(n_pool, size=labelled, replace=False),
        n_pool,
        n_classes,
        representation=x,
        proba=proba,
        embeddings=x,
        mc_proba=mc,
        ensemble_proba=mc,
    )


# --------------------------------------------------------------------------- shared template
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_template_valid_and_reproducible(name):
    state = _synthetic_state()
    picks = get_strategy(name).select(state, 7, np.random.default_rng(3))
    again = get_strategy(name).select(_synthetic_state(), 7, np.random.default_rng(3))
    assert picks.shape == (7,) and picks.dtype == np.int64
    assert np.unique(picks).size == 7
    assert not np.isin(picks, state.labelled).any()
    assert np.all((picks >= 0) & (picks < state.n_pool))
    np.testing.assert_array_equal(picks, again)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_template_cold_start_and_three_rounds(name):
    full = _synthetic_state(labelled=0)
    cold = PoolState(np.zeros(0, dtype=np.int64), 80, 4, representation=full.representation)
    strategy = get_strategy(name)
    labelled = strategy.select(cold, 5, np.random.default_rng(0))
    assert np.unique(labelled).size == 5
    for r in range(3):
        state = PoolState(
            labelled,
            80,
            4,
            representation=full.representation,
            proba=full._proba_all,
            embeddings=full._emb_all,
            mc_proba=full._mc_all,
            ensemble_proba=full._ens_all,
        )
        picks = strategy.select(state, 5, np.random.default_rng(r))
        assert not np.isin(picks, labelled).any()
        labelled = np.concatenate([labelled, picks])
    assert np.unique(labelled).size == 20


def test_k_validation_and_registry_errors():
    state = _synthetic_state(n_pool=20, labelled=15)
    with pytest.raises(ALRunnerError, match="only 5 unlabelled"):
        get_strategy("margin").select(state, 6, np.random.default_rng(0))
    with pytest.raises(ALRunnerError, match="k must be >= 1"):
        get_strategy("margin").select(state, 0, np.random.default_rng(0))
    with pytest.raises(ALRunnerError, match="known: random, uncertainty"):
        get_strategy("nope")
    with pytest.raises(ALRunnerError, match="strategy 'bald'"):
        get_strategy("bald", bogus=1)


def _parameters():
    for name, cls in STRATEGIES.items():
        for param, spec in inspect.signature(cls.__init__).parameters.items():
            if spec.kind is spec.POSITIONAL_OR_KEYWORD and param != "self":
                yield name, param, spec.default


@pytest.mark.parametrize(("name", "param", "default"), list(_parameters()))
def test_meta_every_parameter_is_documented_and_checked(name, param, default):
    """Every strategy parameter is in its class docstring; a numeric one refuses -1 clearly."""
    documented = set()
    for line in (STRATEGIES[name].__doc__ or "").splitlines():
        if (found := re.match(r"^\s{4}([\w, ]+) :", line)) is not None:
            documented |= {n.strip() for n in found.group(1).split(",")}
    assert param in documented, f"{name}.{param} is not in the docstring's Parameters"
    if isinstance(default, int | float) and not isinstance(default, bool):
        with pytest.raises(ALRunnerError, match=rf"^{name}: .*\b{param}\b"):
            get_strategy(name, **{param: -1})


def test_top_k_breaks_ties_at_random():
    scores = np.array([1.0, 5.0, 5.0, 5.0, 0.0])
    seen = {tuple(sorted(top_k(scores, 2, np.random.default_rng(s)))) for s in range(30)}
    assert seen <= {(1, 2), (1, 3), (2, 3)} and len(seen) == 3


# --------------------------------------------------------------------------- properties
def _proba_state(proba, labelled=()):
    proba = np.asarray(proba, dtype=float)
    return PoolState(np.asarray(labelled, dtype=np.int64), len(proba), proba.shape[1], proba=proba)


def test_random_is_uniform_without_replacement():
    state = _proba_state(np.full((12, 2), 0.5), labelled=[0, 1])
    counts = np.zeros(12)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        picks = get_strategy("random").select(state, 3, rng)
        assert np.unique(picks).size == 3
        counts[picks] += 1
    assert counts[:2].sum() == 0
    expected = 3000 * 3 / 10
    chi2 = ((counts[2:] - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # chi-square(9) 99.9% quantile


def test_margin_picks_smallest_top2_gaps():
    proba = [
        [0.90, 0.05, 0.05],  # gap .85
        [0.40, 0.35, 0.25],  # gap .05  <- smallest
        [0.60, 0.30, 0.10],  # gap .30
        [0.45, 0.10, 0.45],  # gap 0    <- smallest (labelled below in the 2nd check)
        [0.50, 0.38, 0.12],  # gap .12
    ]
    picks = get_strategy("margin").select(_proba_state(proba), 2, np.random.default_rng(0))
    assert set(picks) == {1, 3}
    picks = get_strategy("margin").select(_proba_state(proba, [3]), 2, np.random.default_rng(0))
    assert list(picks) == [1, 4]


def test_entropy_and_least_confidence_orderings():
    a = [0.4, 0.6, 0.0, 0.0]  # least confident (1 - .6 = .4) but low entropy (.67)
    b = [0.7, 0.1, 0.1, 0.1]  # confident (.3) but high entropy (.94)
    c = [0.97, 0.01, 0.01, 0.01]  # certain by both
    state = _proba_state([c, a, b])
    assert get_strategy("uncertainty").select(state, 1, np.random.default_rng(0))[0] == 1
    assert get_strategy("entropy").select(state, 1, np.random.default_rng(0))[0] == 2
    assert list(get_strategy("entropy").select(state, 3, np.random.default_rng(0))) == [2, 1, 0]
    assert list(get_strategy("uncertainty").select(state, 3, np.random.default_rng(0))) == [
        1,
        2,
        0,
    ]
    np.testing.assert_allclose(entropy(np.array([b])), [-(0.7 * np.log(0.7) + 0.3 * np.log(0.1))])


def test_bald_prefers_disagreement_over_plain_entropy():
    t = 10
    aleatoric = np.tile([1 / 3, 1 / 3, 1 / 3], (t, 1))  # maximal entropy, all samples agree
    disagree = np.array([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01]] * (t // 2))
    confident = np.tile([0.98, 0.01, 0.01], (t, 1))
    mc = np.stack([confident, aleatoric, disagree], axis=1)  # (T, n, C)
    state = PoolState(np.zeros(0, dtype=np.int64), 3, 3, proba=mc.mean(0), mc_proba=mc)
    assert get_strategy("bald", samples=t).select(state, 1, np.random.default_rng(0))[0] == 2
    assert get_strategy("dbal", samples=t).select(state, 1, np.random.default_rng(0))[0] == 1
    mi = mutual_information(mc)
    assert mi[1] == pytest.approx(0, abs=1e-9) and mi[0] == pytest.approx(0, abs=1e-9)
    assert mi[2] > 0.5


def test_coreset_picks_farthest_point_from_labelled_set():
    x = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [9, 1], [0, 3]], dtype=np.float32)
    state = PoolState(np.array([0]), 6, 2, embeddings=x, proba=np.full((6, 2), 0.5))
    picks = get_strategy("coreset").select(state, 3, np.random.default_rng(0))
    # 10,0 is farthest from {0}; then 0,3 (dist 3 vs 2,0 at 2 and 9,1 at 1.4); then 2,0
    assert list(picks) == [3, 5, 2]
    # against brute force on random data
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 3)).astype(np.float32)
    got = k_center_greedy(pts, np.array([0, 1]), np.arange(2, 50), 5, rng)
    centres = [0, 1]
    for g in got:
        d = np.min(((pts[:, None] - pts[centres][None]) ** 2).sum(-1), axis=1)
        d[centres] = -1
        assert g == np.argmax(d)
        centres.append(g)


def _blobs():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=0.3, size=(40, 2))
    b = rng.normal(scale=0.5, size=(20, 2)) + [10, 10]
    c = rng.normal(scale=0.5, size=(8, 2)) + [-10, 10]
    return np.concatenate([a, b, c]).astype(np.float32)


def test_typiclust_picks_most_typical_point_of_largest_uncovered_cluster():
    x = _blobs()
    state = PoolState(np.array([0, 1]), len(x), 3, representation=x)  # cluster A is covered
    pick = get_strategy("typiclust").select(state, 1, np.random.default_rng(0))[0]
    members = np.arange(40, 60)  # cluster B: the largest uncovered one
    assert pick in members
    d = np.sqrt(((x[members][:, None] - x[members][None]) ** 2).sum(-1))
    knn = np.sort(d, axis=1)[:, 1:11]  # k = min(20, 20 // 2) neighbours, self excluded
    assert pick == members[np.argmax(1 / (knn.mean(1) + 1e-5))]
    np.testing.assert_allclose(typicality(x[members], 10), 1 / (knn.mean(1) + 1e-5), rtol=1e-4)
    # with B covered too, the next pick comes from C (the remaining uncovered cluster)
    state = PoolState(np.array([0, 45]), len(x), 3, representation=x)
    pick = get_strategy("typiclust").select(state, 1, np.random.default_rng(0))[0]
    assert 60 <= pick < 68


def _circle(angles):
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def test_probcover_covers_the_most_uncovered_points():
    rng = np.random.default_rng(0)
    angles = np.concatenate(
        [rng.normal(0, 0.02, 12), rng.normal(np.pi / 2, 0.02, 6), rng.normal(np.pi, 0.02, 3)]
    )
    x = _circle(angles)
    strategy = get_strategy("probcover", delta=0.2)
    state = PoolState(np.zeros(0, dtype=np.int64), len(x), 3, representation=x)
    first = strategy.select(state, 1, np.random.default_rng(0))[0]
    assert first < 12  # a ball in the densest group covers 12 points
    state = PoolState(np.array([first]), len(x), 3, representation=x)
    picks = strategy.select(state, 2, np.random.default_rng(0))
    assert 12 <= picks[0] < 18 and 18 <= picks[1] < 21
    # brute force: each greedy pick maximises the number of newly covered points
    pts = rng.normal(size=(40, 2)).astype(np.float32)
    adj = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)) < 0.6
    indptr = np.concatenate([[0], np.cumsum(adj.sum(1))])
    indices = np.concatenate([np.flatnonzero(row) for row in adj])
    picks = max_coverage(indptr, indices, np.array([0]), 6, np.random.default_rng(0))
    covered = adj[0].copy()
    taken = {0}
    for p in picks:
        gains = (adj & ~covered[None]).sum(1)
        gains[list(taken)] = -1
        assert gains[p] == gains.max()
        covered |= adj[p]
        taken.add(p)


def test_probcover_purity_delta_separates_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.05, (200, 2)), rng.normal(0, 0.05, (200, 2)) + [3, 0]])
    delta = purity_delta(x.astype(np.float32), 2, alpha=0.95)
    assert 0.5 < delta < 3.0  # balls that large stay inside a cluster; larger ones mix


def test_badge_picks_diverse_high_gradient_points():
    # 5 identical uncertain points (gradient norm^2 2), one uncertain point with a larger
    # gradient (norm^2 4.5) and 5 confident points (gradients ~0)
    h = np.array([[2.0, 0, 0]] * 5 + [[0, 3.0, 0]] + [[0, 0, 1.0]] * 5)
    uncertain, confident = [0.5, 0.5, 0.0], [0.999, 0.0005, 0.0005]
    proba = np.array([uncertain] * 6 + [confident] * 5)
    second_in_group = 0
    for seed in range(300):
        state = PoolState(np.zeros(0, dtype=np.int64), 11, 3, proba=proba, embeddings=h)
        picks = get_strategy("badge").select(state, 3, np.random.default_rng(seed))
        assert picks[0] == 5  # k-means++ starts from the largest gradient
        assert np.sum(picks < 5) <= 1  # never two identical gradients
        second_in_group += picks[1] < 5
    # D^2 sampling: group 5 x (4.5 + 2) vs confident 5 x ~4.5
    assert second_in_group / 300 == pytest.approx(32.5 / 55, abs=0.08)
    # the factorised distances equal those of explicit gradient embeddings
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=20)
    hh = rng.normal(size=(20, 3))
    a, hf = gradient_factors(p, hh)
    g = (a[:, :, None] * hf[:, None, :]).reshape(20, -1)
    onehot = np.eye(4)[p.argmax(1)]
    expected = ((p - onehot)[:, :, None] * hh[:, None]).reshape(20, -1)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)
    picks = kmeans_pp_gradients(a, hf, 3, np.random.default_rng(0))
    assert picks[0] == np.argmax((g**2).sum(1)) and np.unique(picks).size == 3


# --------------------------------------------------------------------------- typiclust clustering
def _cloud(n=400, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 2)).astype(np.float32)


def test_typiclust_clustering_follows_the_seed():
    from sklearn.metrics import adjusted_rand_score

    x = _cloud()
    tc = TypiClust()
    a = tc.clusters(x, 12, seed=1).copy()
    np.testing.assert_array_equal(a, TypiClust().clusters(x, 12, seed=1))  # same seed: same
    assert adjusted_rand_score(a, tc.clusters(x, 12, seed=2)) < 0.95  # other seed: other
    # the seed comes from the round's generator: different runs pick differently
    state = PoolState(np.zeros(0, dtype=np.int64), len(x), 2, representation=x)
    picks = {tuple(tc.select(state, 12, np.random.default_rng(s))) for s in range(4)}
    assert len(picks) > 1


def test_kmeans_pp_inertia_matches_sklearn_kmeans_plus_plus():
    from sklearn.cluster import KMeans

    ratios = []
    for seed in range(3):
        x = _cloud(600, seed)
        _, ours = kmeans_pp(x, 25, seed)
        ref = KMeans(25, n_init=1, random_state=seed).fit(x).inertia_
        ratios.append(ours / ref)
    assert np.mean(ratios) < 1.03, ratios


def test_typicality_squared_is_the_reference_codes_variant():
    x = _cloud(30)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    knn = np.sort(d2, axis=1)[:, 1:6]
    np.testing.assert_allclose(typicality(x, 5, "squared"), 1 / (knn.mean(1) + 1e-5), rtol=1e-3)
    with pytest.raises(ALRunnerError, match="typicality must be one of"):
        get_strategy("typiclust", typicality="cubed")


# --------------------------------------------------------------------------- dcom
def test_dcom_competence_is_logistic_in_coverage():
    assert competence(0.0) < 1e-6 and competence(1.0) == pytest.approx(1.0)
    assert competence(0.8) == pytest.approx(0.5, abs=1e-3)
    assert competence(0.7) < 0.01 < 0.99 < competence(0.9)


def test_dcom_without_coverage_selects_like_probcover():
    rng = np.random.default_rng(0)
    angles = np.concatenate(
        [rng.normal(0, 0.02, 12), rng.normal(np.pi / 2, 0.02, 6), rng.normal(np.pi, 0.02, 3)]
    )
    x = _circle(angles)
    proba = np.tile([0.5, 0.5, 0.0], (len(x), 1))
    proba[18:] = [0.34, 0.33, 0.33]  # smallest margins: ignored while nothing is covered
    state = PoolState(np.zeros(0, dtype=np.int64), len(x), 3, representation=x, proba=proba)
    dcom = get_strategy("dcom", delta=0.2)
    picks = dcom.select(state, 3, np.random.default_rng(0))
    assert picks[0] < 12 and 12 <= picks[1] < 18 and 18 <= picks[2] < 21
    assert dcom.last_competence < 1e-6


def test_dcom_at_full_coverage_selects_by_margin():
    x = _circle(np.linspace(0, 0.5, 40))  # all within 0.5 of each other
    gap = np.linspace(0.9, 0.1, 40)
    gap[7] = 0.01  # the smallest margin
    proba = np.stack([(1 + gap) / 2, (1 - gap) / 2], axis=1)  # every point predicted class 0
    labelled = np.array([0, 39])
    state = PoolState(
        labelled, 40, 2, representation=x, proba=proba, labelled_y=np.zeros(2, dtype=int)
    )
    dcom = get_strategy("dcom", delta=0.1)
    picks = dcom.select(state, 3, np.random.default_rng(0))
    assert dcom.last_radii.min() > 1.0  # pure balls grow to max_delta: all covered
    assert dcom.last_competence == pytest.approx(1.0)
    assert list(picks) == [7, 38, 37]  # smallest margins first


def test_dcom_radii_shrink_where_the_model_disagrees():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.03, 10)
    b = rng.normal(0.6, 0.03, 30)  # 3x as many points 0.6 away
    x = _circle(np.concatenate([a, b]))
    pure = np.tile([0.9, 0.1], (40, 1))
    mixed = pure.copy()
    mixed[10:] = [0.1, 0.9]  # the model calls b class 1
    radii = {}
    for name, proba in (("pure", pure), ("mixed", mixed)):
        state = PoolState(
            np.array([0]), 40, 2, representation=x, proba=proba, labelled_y=np.array([0])
        )
        dcom = DCoM(delta=0.3)
        dcom.select(state, 1, np.random.default_rng(0))
        radii[name] = dcom.last_radii[0]
    assert radii["pure"] > 1.0  # the labelled ball grows while it stays pure
    inside_b = np.linalg.norm(x[10:] - x[0], axis=1) < radii["mixed"]
    assert 0.1 < radii["mixed"] and inside_b.mean() < 0.3  # and stops at the other class


# --------------------------------------------------------------------------- ensemble variance
def test_ensemble_var_picks_the_samples_members_disagree_on():
    agree = [[0.9, 0.1, 0.0]] * 4  # all members say class 0 (high entropy does not matter)
    split = [[0.9, 0.1, 0.0]] * 2 + [[0.1, 0.9, 0.0]] * 2  # 2 vs 2
    three = [[0.9, 0.1, 0.0]] * 2 + [[0.1, 0.9, 0.0]] + [[0.0, 0.1, 0.9]]  # 2 vs 1 vs 1
    unsure = [[0.4, 0.35, 0.25]] * 4  # uncertain but unanimous
    ens = np.stack([agree, split, three, unsure], axis=1)  # (M, n, C)
    np.testing.assert_allclose(variation_ratio(ens), [0, 0.5, 0.5, 0])
    state = PoolState(np.array([2]), 4, 3, proba=ens.mean(0), ensemble_proba=ens)
    strategy = get_strategy("ensemble_var", members=4)
    assert list(strategy.select(state, 1, np.random.default_rng(0))) == [1]
    assert set(strategy.select(state, 2, np.random.default_rng(0))) == {1, 0} or set(
        strategy.select(state, 2, np.random.default_rng(0))
    ) == {1, 3}
    with pytest.raises(ALRunnerError, match="members must be >= 2"):
        get_strategy("ensemble_var", members=1)


def test_ensemble_members_are_trained_on_the_labelled_set():
    pytest.importorskip("torch")
    from al_runner.datasets import load_dataset
    from al_runner.learners.models import get_learner

    data = load_dataset("digits")
    labelled = np.random.default_rng(0).choice(data.n_pool, 40, replace=False)
    learner = get_learner("linear", epochs=30, device="cpu").setup(data).fit(labelled, seed=0)
    state = PoolState(labelled, data.n_pool, data.n_classes, learner=learner, seed=5)
    ens = state.ensemble_proba(3)
    assert ens.shape == (3, data.n_pool - 40, data.n_classes)
    np.testing.assert_allclose(ens[0], state.proba(), atol=1e-6)  # member 0: the round's model
    assert np.abs(ens[1] - ens[0]).max() > 0.05  # bootstrap members differ for linear
    again = PoolState(labelled, data.n_pool, data.n_classes, learner=learner, seed=5)
    np.testing.assert_allclose(again.ensemble_proba(3), ens, atol=1e-6)  # reproducible
    assert learner.predict_proba(state.unlabelled) == pytest.approx(ens[0], abs=1e-6)


def test_dcom_caps_the_ball_graph_to_its_edge_budget():
    from al_runner.knn import range_graph
    from al_runner.strategies.dcom import edge_capped_radius

    x = _circle(np.random.default_rng(0).uniform(0, 1.0, 400))
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    radius = edge_capped_radius(z, 8000)
    edges = range_graph(z, radius)[1].size
    assert 0.7 * 8000 < edges < 1.3 * 8000
    state = PoolState(np.zeros(0, dtype=np.int64), 400, 2, representation=x)
    dcom = get_strategy("dcom", delta=0.5, max_edges=8000)
    dcom.select(state, 2, np.random.default_rng(0))
    assert dcom.last_graph_radius == pytest.approx(radius) and radius < 0.5
