"""The settings of one AL experiment (:class:`RunConfig`) and their validation."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.learners.models import LEARNERS
from al_runner.strategies import STRATEGIES, check_strategy_names
from al_runner.strategies.schedule import expand_schedule_files

__all__ = ["EMBEDDINGS", "SSL_EMBEDDINGS", "RunConfig", "check_field_types", "strategies_arg"]

EMBEDDINGS = ("raw", "pca", "simclr", "mocov2", "mocov3", "byol", "file", "checkpoint")
SSL_EMBEDDINGS = ("simclr", "mocov2", "mocov3", "byol")


@dataclass
class RunConfig:
    """Settings of one experiment (everything that determines its curves).

    Parameters
    ----------
    dataset : str
        Registry name (see :data:`al_runner.datasets.DATASETS`).
    strategies : list of str
        Strategy names, or ``["all"]``.
    learner : str
        Learner name (see :data:`al_runner.learners.models.LEARNERS`).
    rounds : int
        Points per curve: the initial set plus ``rounds - 1`` acquisitions.
    labels_per_round : int
        Labels acquired per round ``b`` (``budget=`` is its deprecated old name: in the
        curves ``budget`` is the cumulative number of labels).
    initial_size : int, optional
        Size of the initial labelled set (default ``labels_per_round``).
    initial : {"random", "cold"}
        Initial set at random (shared by all strategies of a seed) or by each strategy's
        cold start (TypiClust/ProbCover select without a model; the others fall back to random).
    seeds : list of int
        Seeds of the repeated runs.
    epochs : int, optional
        Learner epochs (default per learner).
    embedding : {"raw", "pca", "simclr", "mocov2", "mocov3", "byol", "file", "checkpoint"}
        Fixed features of image datasets: flattened pixels, their 64-dim PCA, a cached
        self-supervised embedding (trained into ``embedding_dir`` when missing), a user's
        feature file, or features of a user's torchvision ResNet checkpoint.
    embedding_file : str, optional
        Bring-your-own features aligned to the dataset (sets ``embedding="file"``); see
        :func:`al_runner.embeddings.load_feature_file`.
    encoder_checkpoint : str, optional
        Bring-your-own torchvision ResNet or DINOv2 ViT state dict (sets
        ``embedding="checkpoint"``).
    embedding_dir : str
        Folder of SSL checkpoints and feature caches.
    embedding_epochs : int
        SSL training epochs when the embedding must be built.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    threads : int
        CPU threads of torch and faiss.
    data_root, class_list, labels : str, optional
        Local data locations (see :func:`al_runner.datasets.load_dataset`).
    imbalance, image_size, split_file : optional
        Dataset options of ``imbalanced-cifar*`` and ``imagefolder`` (see
        :func:`al_runner.datasets.load_dataset`).
    strategy_options : dict
        Per-strategy keyword arguments, e.g. ``{"probcover": {"delta": 0.5}}``.
    proxies : bool
        Record the operational proxies of every round (see :mod:`al_runner.experiment.proxies`).
    confidence_delta : float
        Failure probability of the proxies' confidence term.
    stop_when : str, optional
        A stopping rule (see :mod:`al_runner.experiment.stop_rules`), e.g.
        ``"stabilizing_predictions"``, ``"fixed_budget:400"`` or ``"palm:target=0.85"``: a run
        ends at the first round whose verdict is ``stop``; every round records the verdict.
    label_free : bool
        Record a label-free accuracy estimate every round (5-fold cross-validation on the
        labelled set, :mod:`al_runner.experiment.label_free`; biased, see there).
    """

    dataset: str
    strategies: list[str]
    learner: str = "linear"
    rounds: int = 10
    labels_per_round: int = 20
    initial_size: int | None = None
    initial: str = "random"
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    embedding: str = "raw"
    embedding_file: str | None = None
    encoder_checkpoint: str | None = None
    embedding_dir: str = "embeddings"
    embedding_epochs: int = 20
    device: str = "auto"
    threads: int = 1
    data_root: str | None = None
    class_list: str | None = None
    labels: str | None = None
    imbalance: float | None = None
    image_size: int | None = None
    split_file: str | None = None
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    proxies: bool = True
    confidence_delta: float = 0.05
    stop_when: str | None = None
    label_free: bool = False

    def validate(self) -> RunConfig:
        """Check types, names and sizes; expand ``all``; return self."""
        check_field_types(self)
        if list(self.strategies) == ["all"]:
            self.strategies = list(STRATEGIES)
        self.strategies = expand_schedule_files(self.strategies, STRATEGIES)
        if not self.strategies:
            raise ALRunnerError("no strategies given")
        check_strategy_names(list(self.strategies))
        if len(set(self.strategies)) != len(self.strategies):
            raise ALRunnerError(f"strategies repeat a name: {self.strategies}")
        if self.learner not in LEARNERS:
            raise ALRunnerError(f"unknown learner {self.learner!r}; known: {', '.join(LEARNERS)}")
        if self.embedding_file and self.encoder_checkpoint:
            raise ALRunnerError("give --embedding-file or --encoder-checkpoint, not both")
        for given, name in ((self.embedding_file, "file"), (self.encoder_checkpoint, "checkpoint")):
            if given:
                if self.embedding not in ("raw", name):
                    raise ALRunnerError(f"--embedding {self.embedding} conflicts with a {name}")
                self.embedding = name
        if self.embedding in ("file", "checkpoint") and not (
            self.embedding_file or self.encoder_checkpoint
        ):
            raise ALRunnerError(f"embedding {self.embedding!r} needs a file or checkpoint path")
        if self.embedding not in EMBEDDINGS:
            raise ALRunnerError(
                f"unknown embedding {self.embedding!r}; known: {', '.join(EMBEDDINGS)}"
            )
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise ALRunnerError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.initial not in ("random", "cold"):
            raise ALRunnerError(f"initial must be 'random' or 'cold', got {self.initial!r}")
        for name, value, low in (
            ("rounds", self.rounds, 1),
            ("labels_per_round", self.labels_per_round, 1),
            ("threads", self.threads, 1),
        ):
            if int(value) < low:
                raise ALRunnerError(f"{name} must be >= {low}, got {value}")
        for name, low in (("epochs", 1), ("embedding_epochs", 1), ("image_size", 1)):
            value = getattr(self, name)
            if value is not None and value < low:
                raise ALRunnerError(f"{name} must be >= {low}, got {value}")
        if self.imbalance is not None and not (
            math.isfinite(self.imbalance) and self.imbalance >= 1
        ):
            raise ALRunnerError(f"imbalance must be a finite ratio >= 1, got {self.imbalance}")
        if not 0 < self.confidence_delta < 1:
            raise ALRunnerError(f"confidence_delta must lie in (0, 1), got {self.confidence_delta}")
        if self.initial_size is None:
            self.initial_size = self.labels_per_round
        if self.initial_size < 1:
            raise ALRunnerError(f"initial size must be >= 1, got {self.initial_size}")
        if not self.seeds:
            raise ALRunnerError("no seeds given")
        if len(set(self.seeds)) != len(self.seeds):
            raise ALRunnerError(f"seeds repeat a value: {self.seeds}")
        if min(self.seeds) < 0 or max(self.seeds) >= 2**32:
            raise ALRunnerError(f"seeds must lie in 0 .. 2**32 - 1, got {self.seeds}")
        self.seeds = [int(s) for s in self.seeds]
        if self.stop_when is not None:  # a misspelt rule fails before any round runs
            from al_runner.experiment.stop_rules import get_stop_rule

            get_stop_rule(self.stop_when)
        return self

    def dataset_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`al_runner.datasets.load_dataset` besides the root."""
        return {
            "class_list": self.class_list, "labels": self.labels, "imbalance": self.imbalance,
            "image_size": self.image_size, "split_file": self.split_file,
        }  # fmt: skip

    @property
    def budget(self) -> int:
        """Deprecated name of :attr:`labels_per_round`."""
        warnings.warn(_BUDGET_DEPRECATED, DeprecationWarning, stacklevel=2)
        return self.labels_per_round

    @property
    def final_budget(self) -> int:
        """Labels at the last step."""
        return int(self.initial_size) + (self.rounds - 1) * self.labels_per_round

    def budgets(self) -> np.ndarray:
        """Cumulative labels at every step."""
        return int(self.initial_size) + np.arange(self.rounds) * self.labels_per_round


_BUDGET_DEPRECATED = (
    "RunConfig's `budget` is now `labels_per_round` (labels acquired per round; in the curves "
    "`budget` is the cumulative number of labels); the old name will be removed"
)
_dataclass_init = RunConfig.__init__


@functools.wraps(_dataclass_init)
def _init(self: RunConfig, *args: Any, budget: int | None = None, **kwargs: Any) -> None:
    """The dataclass ``__init__``, also taking the deprecated ``budget=`` keyword."""
    if budget is not None:
        warnings.warn(_BUDGET_DEPRECATED, DeprecationWarning, stacklevel=2)
        given = kwargs.setdefault("labels_per_round", budget)
        if given != budget or len(args) > 4:
            raise ALRunnerError("give labels_per_round or its old name budget, not both")
    _dataclass_init(self, *args, **kwargs)


RunConfig.__init__ = _init  # type: ignore[method-assign]


def strategies_arg(text: str | Sequence[str]) -> list[str]:
    """Split a comma-separated strategy list (``all`` expands to every strategy)."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    return list(STRATEGIES) if names == ["all"] else names


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _type_error(name: str, value: Any, annotation: str) -> str | None:
    """Why ``value`` does not fit the field annotation ``annotation`` (None: it fits)."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if value is None:
        return None if optional else f"{name} must be set, got nothing"
    if base in ("int", "float", "str", "bool"):
        ok = {
            "int": isinstance(value, int | np.integer) and not isinstance(value, bool),
            "float": isinstance(value, int | float | np.number) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
        }[base]
        if base == "float" and ok and not math.isfinite(float(value)):
            return f"{name} must be a finite number, got {value!r}"
        return None if ok else f"{name} must be {_TYPE_WORDS[base]}, got {value!r}"
    if base.startswith("list["):
        item = base[5:-1]
        if not isinstance(value, list | tuple):
            return f"{name} must be a list, got {value!r}"
        for v in value:
            if (why := _type_error(f"{name} entry", v, item)) is not None:
                return why
        return None
    if base.startswith("dict["):
        if not isinstance(value, dict):
            return f"{name} must be a table (dict), got {value!r}"
        inner = base[5:-1].partition(", ")[2]
        for key, v in value.items():
            if not isinstance(key, str):
                return f"{name} keys must be strings, got {key!r}"
            if inner.startswith("dict[") and not isinstance(v, dict):
                return f"{name}.{key} must be a table (dict), got {v!r}"
            if inner in _TYPE_WORDS and (why := _type_error(f"{name}.{key}", v, inner)):
                return why
        return None
    return None  # Any


def check_field_types(obj: Any) -> None:
    """Raise a one-line :class:`ALRunnerError` for a dataclass field of the wrong type.

    Settings read from files (grid TOML) arrive untyped: ``rounds = "x"`` must be refused by
    name, not end in a traceback of ``int("x")``.
    """
    for f in fields(obj):
        why = _type_error(f.name, getattr(obj, f.name), str(f.type))
        if why is not None:
            raise ALRunnerError(why)
