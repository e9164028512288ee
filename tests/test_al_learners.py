"""Learners: the linear head is sklearn's logistic regression, MC dropout runs the trunk once."""

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402
from conftest import make_imagenet50

from al_runner.datasets import ALDataset, Split, load_dataset
from al_runner.errors import ALRunnerError
from al_runner.learners.models import LEARNERS, _crop_flip, get_learner, resolve_device
from al_runner.strategies import PoolState, get_strategy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_linear_is_sklearn_logistic_regression(digits):
    sklearn = pytest.importorskip("sklearn.linear_model")
    idx = np.random.default_rng(0).choice(digits.n_pool, 150, replace=False)
    learner = get_learner("linear", device="cpu").setup(digits).fit(idx, seed=0)
    x = digits.train.x.reshape(digits.n_pool, -1) / 255.0
    mean, std = x.mean(0), x.std(0, ddof=1)
    scale = np.where(std > 1e-3, std, 1.0)
    ref = sklearn.LogisticRegression(C=1.0, max_iter=5000, tol=1e-8)
    ref.fit((x[idx] - mean) / scale, digits.train.y[idx])
    xt = (digits.test.x.reshape(len(digits.test), -1) / 255.0 - mean) / scale
    ours = learner.predict_proba(None, "test")
    np.testing.assert_allclose(ours, ref.predict_proba(xt), atol=2e-3)
    assert learner.accuracy() == pytest.approx(ref.score(xt, digits.test.y), abs=0.005)


def test_mc_dropout_runs_the_trunk_once(digits):
    learner = get_learner("cnn", epochs=1, device="cpu").setup(digits)
    learner.fit(np.arange(60), seed=1)
    calls = []
    hook = learner.model.trunk.register_forward_hook(lambda *a: calls.append(1))
    state = PoolState(np.arange(60), digits.n_pool, 10, learner=learner, seed=0)
    mc = state.mc_proba(10)
    n_batches = len(calls)
    assert mc.shape == (10, digits.n_pool - 60, 10)
    assert n_batches == int(np.ceil(digits.n_pool / 128))  # one pass over the pool
    get_strategy("bald").select(state, 5, np.random.default_rng(0))
    get_strategy("dbal").select(state, 5, np.random.default_rng(0))
    get_strategy("badge").select(state, 5, np.random.default_rng(0))
    assert len(calls) == n_batches  # embeddings, probabilities and MC samples share one pass
    hook.remove()
    # the T samples differ (dropout is active) and average close to the deterministic output
    assert np.abs(mc[0] - mc[1]).max() > 1e-3
    np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_learners_learn_and_are_deterministic(digits, name):
    idx = np.random.default_rng(1).choice(digits.n_pool, 300, replace=False)
    a = get_learner(name, device="cpu").setup(digits).fit(idx, seed=5)
    b = get_learner(name, device="cpu").setup(digits).fit(idx, seed=5)
    assert a.accuracy() > 0.85
    np.testing.assert_array_equal(a.predict_proba(np.arange(50)), b.predict_proba(np.arange(50)))
    assert a.embed(np.arange(4)).shape == (4, a.embed_dim)


def test_resnet18_protocol_trains_on_tiny_images(digits):
    learner = get_learner("resnet18", epochs=2, device="cpu", batch_size=64).setup(digits)
    learner.fit(np.arange(64), seed=0)
    assert learner.embed(np.arange(3)).shape == (3, 512)
    opt, sched = learner._optimiser(learner.model, 10)
    assert opt.defaults["nesterov"] and opt.defaults["lr"] == 0.025
    assert opt.defaults["weight_decay"] == 3e-4 and opt.defaults["momentum"] == 0.9
    assert type(sched).__name__ == "CosineAnnealingLR"
    assert get_learner("resnet18").epochs == 100 and get_learner("resnet18").batch_size == 512


def _windows(image, pad: int) -> list:
    """Every crop of the zero-padded image at the original size, unflipped and flipped."""
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    h, w = image.shape[-2:]
    crops = [
        padded[..., dy : dy + h, dx : dx + w]
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
    ]
    return crops + [c.flip(-1) for c in crops]


def test_crop_flip_outputs_are_shifted_or_flipped_windows():
    # an asymmetric image (distinct positive pixels): each crop/flip of it is distinguishable
    image = torch.arange(1, 2 * 6 * 6 + 1, dtype=torch.float32).reshape(1, 2, 6, 6)
    batch = image.repeat(64, 1, 1, 1)
    torch.manual_seed(0)
    out = _crop_flip(batch, pad=2)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    windows = _windows(image[0], pad=2)
    kinds = []
    for sample in out:
        matches = [k for k, w in enumerate(windows) if torch.equal(sample, w)]
        assert len(matches) == 1, "not a crop of the padded image (or a flip of one)"
        kinds.append(matches[0])
    # random per sample: the identity is only one of 50 windows, flips and shifts both occur
    assert len(set(kinds)) >= 10
    assert sum(not torch.equal(sample, image[0]) for sample in out) >= 50
    assert any(k >= 25 for k in kinds) and any(k < 25 for k in kinds)


def test_flip_alone_preserves_the_pixels():
    image = torch.arange(1, 2 * 5 * 7 + 1, dtype=torch.float32).reshape(1, 2, 5, 7)
    batch = image.repeat(32, 1, 1, 1)
    torch.manual_seed(1)
    out = _crop_flip(batch, pad=0)
    flipped = [torch.equal(s, image[0].flip(-1)) for s in out]
    kept = [torch.equal(s, image[0]) for s in out]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # one or the other
    assert 5 <= sum(flipped) <= 27  # about half of 32
    for sample in out:  # the same pixel multiset
        assert torch.equal(sample.flatten().sort().values, image.flatten().sort().values)


def test_feature_learners_on_a_features_dataset():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (100, 4)), rng.normal(3, 1, (100, 4))]).astype(np.float32)
    y = np.repeat([0, 1], 100)
    data = ALDataset("features", "features", Split(x[::2], y[::2]), Split(x[1::2], y[1::2]), 2)
    for name in ("linear", "mlp"):
        learner = get_learner(name, device="cpu").setup(data).fit(np.arange(0, 100, 5), seed=0)
        assert learner.accuracy() > 0.9
    with pytest.raises(ALRunnerError, match="needs images"):
        get_learner("cnn").setup(data)


def test_learner_errors():
    with pytest.raises(ALRunnerError, match="known: linear, mlp, cnn, resnet18, resnet50"):
        get_learner("svm")
    if not torch.cuda.is_available():
        with pytest.raises(ALRunnerError, match="CUDA is not available"):
            resolve_device("cuda")
        assert resolve_device("auto") == "cpu"
    with pytest.raises(ALRunnerError, match="must be auto, cpu"):
        resolve_device("tpu")
    with pytest.raises(ALRunnerError, match="not trained yet"):
        get_learner("linear").embed(np.arange(3))
    assert set(LEARNERS) == {"linear", "mlp", "cnn", "resnet18", "resnet50"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cnn_on_cuda_with_amp(digits):
    learner = get_learner("cnn", device="auto").setup(digits)
    assert learner.amp and learner.device.type == "cuda"
    learner.fit(np.arange(200), seed=0)
    assert learner.accuracy() > 0.7


def test_on_disk_imagefolder_runs_through_the_loop(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    import al_runner.learners.models as learners
    import al_runner.learners.training as training
    from al_runner.experiment.loop import RunConfig, run_experiment

    make_imagenet50(tmp_path)
    monkeypatch.setattr(training, "loader_workers", lambda: 0)
    monkeypatch.setattr(learners.CNNLearner, "min_steps", 1)
    cfg = RunConfig(
        "imagenet50", ["margin", "typiclust"], learner="cnn", epochs=1, rounds=2,
        labels_per_round=5, data_root=str(tmp_path),
    )  # fmt: skip
    curves = run_experiment(cfg, progress=False)
    assert curves.budget.squeeze().to_numpy().tolist() == [[5, 10], [5, 10]]
    assert np.isfinite(curves.accuracy).all()
