"""VAAL: a VAE and an adversarial discriminator on labelled vs unlabelled points.

Sinha, Ebrahimi & Darrell, Variational Adversarial Active Learning, ICCV 2019. As in the
reference runner (pycls ``vaal_model`` / ``train_vae_disc``): every round a fresh VAE and a
discriminator on the VAE's mean code are trained together; the VAE minimises its ELBO on
labelled and unlabelled points plus an adversarial term that makes both look *labelled* to
the discriminator, the discriminator learns labelled = 1, unlabelled = 0; then the ``k``
unlabelled points the discriminator scores as least likely labelled are queried. Adam
(5e-4 both), lr x 0.9 every 1/25 of the steps, ``n_pool / batch_size`` steps per epoch.

To stay affordable on CPU this runs on the run's fixed representation (standardised) with MLP
encoder/decoder rather than the reference's convolutional VAE on images, and the ELBO is per
sample (summed over features and latent dimensions, averaged over the batch) as in the paper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.strategies.base import PoolState, Strategy, top_k

__all__ = ["VAAL", "vaal_scores"]


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the runner extra
        raise ALRunnerError("vaal needs torch: pip install 'palm-bayes[runner]'") from exc
    return torch


def _networks(torch: Any, d: int, latent: int, hidden: int, disc_hidden: int) -> tuple[Any, Any]:
    nn = torch.nn

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            self.mu = nn.Linear(hidden, latent)
            self.logvar = nn.Linear(hidden, latent)
            self.dec = nn.Sequential(
                nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            self.out = nn.Linear(hidden, d)

        def forward(self, x: Any, gen: Any = None) -> tuple[Any, Any, Any]:
            h = torch.relu(self.enc(x))
            mu, logvar = self.mu(h), self.logvar(h)
            eps = torch.randn(mu.shape, generator=gen, device=mu.device)
            z = mu + eps * torch.exp(0.5 * logvar)
            return self.out(self.dec(z)), mu, logvar

    w = disc_hidden  # the reference discriminator: z -> 512 -> 512 -> 1
    disc = nn.Sequential(
        nn.Linear(latent, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 1)
    )
    return VAE(), disc


def vaal_scores(
    x: np.ndarray,
    labelled: np.ndarray,
    unlabelled: np.ndarray,
    *,
    epochs: int = 10,
    max_steps: int | None = 1000,
    latent: int = 32,
    hidden: int = 128,
    disc_hidden: int = 128,
    batch_size: int = 64,
    lr: float = 5e-4,
    beta: float = 1.0,
    adversary: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
) -> np.ndarray:
    """Train a VAE + discriminator and score the unlabelled points.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n_pool, d)`` features of the pool (standardised here).
    labelled, unlabelled : numpy.ndarray
        Pool indices of the two sets; both non-empty.
    epochs, latent, hidden, disc_hidden, batch_size, lr, beta, adversary : int or float
        Passes over the pool, latent size, VAE and discriminator MLP widths, batch size (of
        each set per step), Adam learning rate, KL weight and weight of the VAE's
        adversarial term.
    max_steps : int, optional
        Cap on the training steps (``epochs * n_pool / batch_size`` otherwise); None: no cap.
    seed : int
        Seed of the initial weights, batches and reparametrisation noise.
    device : str
        torch device.

    Returns
    -------
    numpy.ndarray
        The discriminator's probability that each ``unlabelled`` point is labelled.
    """
    torch = _torch()
    labelled = np.asarray(labelled, dtype=np.int64)
    unlabelled = np.asarray(unlabelled, dtype=np.int64)
    if labelled.size == 0 or unlabelled.size == 0:
        raise ALRunnerError("vaal needs labelled and unlabelled points")
    xf = np.asarray(x, dtype=np.float32)
    xf = (xf - xf.mean(0)) / (xf.std(0) + 1e-6)
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global state untouched
        torch.manual_seed(seed)
        vae, disc = _networks(torch, xf.shape[1], latent, hidden, disc_hidden)
    vae, disc = vae.to(dev), disc.to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    xt = torch.as_tensor(xf, device=dev)
    lab = torch.as_tensor(labelled, device=dev)
    unl = torch.as_tensor(unlabelled, device=dev)
    opt_v = torch.optim.Adam(vae.parameters(), lr=lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    steps_per_epoch = max(1, xf.shape[0] // batch_size)
    total = steps_per_epoch * int(epochs)
    if max_steps is not None:
        total = min(total, int(max_steps))
    decay_every = max(1, total // 25)

    def elbo_loss(xb: Any) -> tuple[Any, Any]:
        recon, mu, logvar = vae(xb, gen)
        rec = ((recon - xb) ** 2).sum(1).mean()
        kld = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1).mean()
        return rec + beta * kld, mu

    for step in range(total):
        if step and step % decay_every == 0:
            for opt in (opt_v, opt_d):
                for group in opt.param_groups:
                    group["lr"] *= 0.9
        lb = xt[lab[torch.randint(lab.numel(), (batch_size,), generator=gen, device=dev)]]
        ub = xt[unl[torch.randint(unl.numel(), (batch_size,), generator=gen, device=dev)]]
        # VAE step: reconstruct both sets and make both look labelled
        loss_l, mu_l = elbo_loss(lb)
        loss_u, mu_u = elbo_loss(ub)
        d_l, d_u = disc(mu_l), disc(mu_u)
        fool = bce(d_l, torch.ones_like(d_l)) + bce(d_u, torch.ones_like(d_u))
        opt_v.zero_grad()
        (loss_l + loss_u + adversary * fool).backward()
        opt_v.step()
        # discriminator step: labelled = 1, unlabelled = 0
        with torch.no_grad():
            mu_l = vae.mu(torch.relu(vae.enc(lb)))
            mu_u = vae.mu(torch.relu(vae.enc(ub)))
        d_l, d_u = disc(mu_l), disc(mu_u)
        loss_d = bce(d_l, torch.ones_like(d_l)) + bce(d_u, torch.zeros_like(d_u))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()

    return _labelled_probability(torch, vae, disc, xt[unl])


def _labelled_probability(torch: Any, vae: Any, disc: Any, x: Any) -> np.ndarray:
    """The discriminator's P(labelled) of each row of ``x`` (through the VAE's mean), in chunks."""
    with torch.no_grad():
        out = []
        for start in range(0, x.shape[0], 8192):
            xb = x[start : start + 8192]
            out.append(torch.sigmoid(disc(vae.mu(torch.relu(vae.enc(xb))))).squeeze(1))
        return torch.cat(out).double().cpu().numpy()


class VAAL(Strategy):
    """The unlabelled points a labelled-vs-unlabelled discriminator finds least labelled.

    Parameters
    ----------
    epochs : int
        Passes over the pool per round (100 in the reference on GPU; 10 here).
    max_steps : int, optional
        Cap on the training steps per round (1000: about 14 s on one CPU thread whatever the
        pool size; a 60k pool would take ~9400 steps for 10 epochs); None for no cap.
    latent : int
        Latent size of the VAE (32 in the reference).
    hidden : int
        Width of the MLP encoder/decoder (128).
    disc_hidden : int
        Width of the discriminator's two hidden layers (512 in the reference; 128 here keeps a
        CPU step ~4x cheaper).
    batch_size : int
        Points of each set per step (64 in the reference).
    lr, beta, adversary : float
        Adam learning rate (5e-4), KL weight (1) and adversarial weight (1), as the reference.
    device : str, optional
        torch device; default the learner's device, else CPU.

    Notes
    -----
    Runs on the fixed representation (the model's embeddings when there is none). With no
    labelled point yet (cold start) there is nothing to discriminate and it samples at random.
    Training is seeded from the round's generator, so a run reproduces.
    """

    name = "vaal"
    needs_model = False
    uses_representation = True
    reference = "Sinha, Ebrahimi & Darrell, Variational Adversarial Active Learning, ICCV 2019"

    def __init__(
        self,
        epochs: int = 10,
        max_steps: int | None = 1000,
        latent: int = 32,
        hidden: int = 128,
        disc_hidden: int = 128,
        batch_size: int = 64,
        lr: float = 5e-4,
        beta: float = 1.0,
        adversary: float = 1.0,
        device: str | None = None,
    ) -> None:
        for key, value in (
            ("epochs", epochs),
            ("latent", latent),
            ("hidden", hidden),
            ("disc_hidden", disc_hidden),
            ("batch_size", batch_size),
            ("max_steps", 1 if max_steps is None else max_steps),
        ):
            if int(value) != value or value < 1:
                raise ALRunnerError(f"vaal: {key} must be a positive integer, got {value!r}")
        if lr <= 0 or beta < 0 or adversary < 0:
            raise ALRunnerError(
                f"vaal: lr must be > 0 and beta, adversary >= 0 (got {lr}, {beta}, {adversary})"
            )
        self.epochs = int(epochs)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.latent = int(latent)
        self.hidden = int(hidden)
        self.disc_hidden = int(disc_hidden)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.beta = float(beta)
        self.adversary = float(adversary)
        self.device = device

    def _device(self, state: PoolState) -> str:
        if self.device is not None:
            return self.device
        dev = getattr(state.learner, "device", None)
        return str(dev) if dev is not None else "cpu"

    def _select(self, state: PoolState, k: int, rng: np.random.Generator) -> np.ndarray:
        if state.labelled.size == 0:
            return rng.choice(state.unlabelled, size=k, replace=False)
        scores = vaal_scores(
            state.features(),
            state.labelled,
            state.unlabelled,
            epochs=self.epochs,
            max_steps=self.max_steps,
            latent=self.latent,
            hidden=self.hidden,
            disc_hidden=self.disc_hidden,
            batch_size=self.batch_size,
            lr=self.lr,
            beta=self.beta,
            adversary=self.adversary,
            seed=int(rng.integers(2**62)),
            device=self._device(state),
        )
        return state.unlabelled[top_k(-scores, k, rng)]
