"""DINOv2 ViTs from a local state dict: architecture read from the weights, clear errors.

No released DINOv2 weights are available offline, so these tests save tiny randomly initialised
ViTs with DINOv2's parameter names and check loading, feature extraction and the errors.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from al_runner.datasets import ALDataset, Split  # noqa: E402
from al_runner.embeddings import checkpoint_features  # noqa: E402
from al_runner.embeddings.vit import DinoViT, dinov2_from_state_dict  # noqa: E402
from al_runner.errors import ALRunnerError  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as al-runner runs (--threads 1); 2 threads thrash a busy CPU
    yield
    torch.set_num_threads(before)


def _random_vit(registers=0, swiglu=False, seed=0):
    torch.manual_seed(seed)
    net = DinoViT(14, 64, 2, 1, 96, grid=4, registers=registers, swiglu=swiglu)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net.eval()


@pytest.mark.parametrize("registers,swiglu", [(0, False), (4, True)])
def test_loaded_vit_reproduces_the_saved_one(registers, swiglu):
    net = _random_vit(registers, swiglu)
    # wrapped like a DINOv2 training checkpoint: teacher.backbone.*, blocks chunked for FSDP
    state = {
        "teacher": {
            "backbone."
            + k.replace("blocks.1.", "blocks.0.1.").replace("blocks.0.n", "blocks.0.0.n"): v
            for k, v in net.state_dict().items()
        }
    }
    encoder = dinov2_from_state_dict(state, "vit.pth")
    assert encoder.dim == 64 and len(encoder.net.net.blocks) == 2
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), net(x))
        small = encoder(torch.rand(2, 1, 32, 32))  # grey, small: expanded and resized to 224
    assert small.shape == (2, 64) and torch.isfinite(small).all()


def test_vit_checkpoint_features_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    data = ALDataset(
        name="tiny",
        kind="image",
        train=Split(rng.integers(0, 255, (6, 3, 28, 28), dtype=np.uint8), np.arange(6) % 2),
        test=Split(rng.integers(0, 255, (2, 3, 28, 28), dtype=np.uint8), np.arange(2)),
        n_classes=2,
    )
    state = _random_vit().state_dict()
    torch.save(state, tmp_path / "vit.pth")
    feats = checkpoint_features(
        data, tmp_path / "vit.pth", tmp_path, device="cpu", torchvision=True
    )
    assert feats["train"].shape == (6, 64) and feats["test"].shape == (2, 64)
    np.testing.assert_allclose(feats["train"].mean(0), 0, atol=1e-3)  # standardised on the pool
    del state["blocks.1.mlp.fc2.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ALRunnerError, match=r"keys do not match a DINOv2 ViT .*1 missing"):
        checkpoint_features(data, tmp_path / "broken.pth", tmp_path, torchvision=True)
    with pytest.raises(ALRunnerError, match="encoder checkpoint .*absent.pth does not exist"):
        checkpoint_features(data, tmp_path / "absent.pth", tmp_path, torchvision=True)
    with pytest.raises(ALRunnerError, match="not a DINOv2 ViT state dict"):
        dinov2_from_state_dict({"patch_embed.proj.weight": torch.zeros(8, 3, 14, 14)}, "x.pth")
