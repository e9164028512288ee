"""A sweep's grid: datasets x strategies x embeddings x seeds over a :class:`RunConfig` template.

:class:`SweepGrid` is read from a TOML file (or a dict with its keys), checked before anything
runs, and expands into one :class:`RunSpec` and one :class:`~al_runner.experiment.config.RunConfig`
per
cell; :mod:`al_runner.sweep.run` runs the cells on Ray.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from al_runner.errors import ALRunnerError
from al_runner.experiment.config import SSL_EMBEDDINGS, RunConfig, check_field_types

__all__ = ["GRID_EMBEDDINGS", "RunSpec", "SweepGrid"]

GRID_EMBEDDINGS = ("raw", "pca", *SSL_EMBEDDINGS)
#: Most seeds a grid's ``seeds = n`` may ask for (a typo like 1e9 must not build a huge list).
MAX_SEEDS = 10_000


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a cell of the grid."""

    dataset: str
    strategy: str
    embedding: str
    seed: int

    @property
    def name(self) -> str:
        """``dataset/embedding/strategy/seed`` (how progress and failures name the run)."""
        return f"{self.dataset}/{self.embedding}/{self.strategy}/seed{self.seed}"

    def path(self, results: str | os.PathLike) -> Path:
        """The run's curves file inside the results folder (its state file sits beside it)."""
        return Path(results) / self.dataset / self.embedding / self.strategy / f"seed{self.seed}.nc"


#: RunConfig fields a grid sets per run (its axes and per-dataset tables), not in the template
_PER_RUN = ("dataset", "strategies", "seeds", "embedding", "embedding_dir", "embedding_file",
            "encoder_checkpoint", "data_root", "class_list", "labels", "imbalance",
            "image_size", "split_file")  # fmt: skip
_DATASET_OPTIONS = ("imbalance", "image_size", "split_file")


def _template_keys() -> list[str]:
    """The TOML keys that go to the grid's :class:`RunConfig` template."""
    return [f.name for f in fields(RunConfig) if f.name not in _PER_RUN]


@dataclass
class SweepGrid:
    """A sweep: the grid's axes, the settings every run shares and how Ray runs them.

    The settings of the runs are one :class:`al_runner.experiment.config.RunConfig`, the
    ``template``;
    each cell of the grid is the template with its dataset, strategy, embedding and seed
    (and the dataset's data root and options) put in by :func:`dataclasses.replace`. In the
    TOML file the template's fields are top-level keys beside the grid's own.

    Parameters
    ----------
    datasets, strategies : list of str
        Registry names (``al-runner list``); ``strategies = ["all"]`` takes every strategy.
    embeddings : list of str
        ``raw``, ``pca`` or an SSL method (``simclr``, ``mocov2``, ``mocov3``, ``byol``).
    seeds : list of int
        Seeds of the repeated runs (a TOML integer ``n`` means ``0 .. n-1``).
    template : RunConfig
        Settings every run shares (``learner``, ``rounds``, ``labels_per_round``,
        ``initial_size``, ``initial``, ``epochs``, ``embedding_epochs``, ``threads`` = the CPUs
        each Ray task asks for, ``device``, ``strategy_options``, ...); its dataset,
        strategies, seeds and embedding are replaced per run.
    embedding_options : dict
        Further SSL training settings (:class:`al_runner.embeddings.EmbedConfig` fields such as
        ``batch_size``, ``arch``, ``lr``, ``max_steps_per_epoch``).
    embedding_dir : str, optional
        Folder of SSL checkpoints and feature caches (default: ``embeddings/`` inside the
        results folder).
    gpus_per_run : float
        GPUs each run of an image learner (cnn, resnet*) asks for when the cluster has GPUs;
        a fraction packs several runs onto one GPU.
    retries : int
        Ray retries of a failed or lost run before it is reported as failed.
    data_roots, class_lists : dict
        Per dataset: the local data path and ImageNet class-list file.
    dataset_options : dict
        Per dataset: ``imbalance`` (imbalanced CIFAR), ``image_size`` and ``split_file``
        (image folders), e.g. ``{"imbalanced-cifar10": {"imbalance": 50}}``.

    Examples
    --------
    >>> grid = SweepGrid.from_dict({"datasets": ["digits"], "strategies": ["random", "margin"],
    ...                             "seeds": 2, "rounds": 4, "labels_per_round": 20})
    >>> [spec.name for spec in grid.runs()][:2]
    ['digits/raw/random/seed0', 'digits/raw/margin/seed0']
    >>> grid.run_config(grid.runs()[1], "emb").labels_per_round
    20
    """

    datasets: list[str]
    strategies: list[str]
    embeddings: list[str] = field(default_factory=lambda: ["raw"])
    seeds: list[int] = field(default_factory=lambda: [0])
    template: RunConfig = field(default_factory=lambda: RunConfig("", []))
    embedding_options: dict[str, Any] = field(default_factory=dict)
    embedding_dir: str | None = None
    gpus_per_run: float = 1.0
    retries: int = 2
    data_roots: dict[str, str] = field(default_factory=dict)
    class_lists: dict[str, str] = field(default_factory=dict)
    dataset_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> SweepGrid:
        """Read a grid file; unknown keys and wrong types are errors that name the key."""
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ALRunnerError(f"grid file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ALRunnerError(f"grid file {path} is not valid TOML: {exc}") from exc
        return cls.from_dict(table, source=str(path))

    @classmethod
    def from_dict(cls, table: dict[str, Any], source: str = "grid") -> SweepGrid:
        """Build a grid from a dict with the TOML file's keys (the template's at top level)."""
        own = {f.name for f in fields(cls)} - {"template"}
        shared = set(_template_keys())
        known = own | shared
        unknown = sorted(set(table) - known - {"budget"})
        if unknown:
            raise ALRunnerError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        for key in ("datasets", "strategies"):
            if key not in table:
                raise ALRunnerError(f"{source}: missing key {key!r}")
        table = dict(table)
        if "budget" in table:  # the old name of labels_per_round
            warnings.warn(
                f"{source}: the key `budget` is now `labels_per_round` (labels acquired per "
                "round); the old name will be removed",
                DeprecationWarning,
                stacklevel=2,
            )
            if table.setdefault("labels_per_round", table["budget"]) != table.pop("budget"):
                raise ALRunnerError(f"{source}: give labels_per_round or budget, not both")
        seeds = table.get("seeds")
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if not 1 <= seeds <= MAX_SEEDS:
                raise ALRunnerError(
                    f"{source}: seeds = n runs seeds 0 .. n-1, n from 1 to {MAX_SEEDS}; got {seeds}"
                )
            table["seeds"] = list(range(seeds))
        for key in ("datasets", "strategies", "embeddings", "seeds"):
            value = table.get(key)
            if isinstance(value, str):
                table[key] = [value]
            elif value is not None and not isinstance(value, list):
                raise ALRunnerError(f"{source}: {key} must be a list, got {value!r}")
        template = RunConfig("", [], **{k: v for k, v in table.items() if k in shared})
        grid = cls(**{k: v for k, v in table.items() if k in own}, template=template)
        try:
            check_field_types(grid)
            return grid.validate()
        except ALRunnerError as err:
            raise ALRunnerError(f"{source}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """The grid as the TOML file's keys (what :meth:`from_dict` reads)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "template"}
        out.update({k: getattr(self.template, k) for k in _template_keys()})
        return out

    def validate(self) -> SweepGrid:
        """Check every name and size up front, before any run starts; return self.

        The grid checks its axes and tables; the settings of the runs are checked by
        :meth:`al_runner.experiment.config.RunConfig.validate` on each (dataset, embedding).
        """
        from al_runner.datasets import DATASETS
        from al_runner.strategies import get_strategy, stage_names

        for key in ("datasets", "strategies", "embeddings", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ALRunnerError(f"the grid has no {key}")
        unknown = [d for d in self.datasets if d not in DATASETS]
        if unknown:
            raise ALRunnerError(f"unknown dataset {unknown[0]!r}; known: {', '.join(DATASETS)}")
        unknown = [e for e in self.embeddings if e not in GRID_EMBEDDINGS]
        if unknown:
            raise ALRunnerError(
                f"unknown embedding {unknown[0]!r}; a sweep takes {', '.join(GRID_EMBEDDINGS)} "
                "(your own features: al-runner run --embedding-file)"
            )
        for key in ("datasets", "embeddings"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ALRunnerError(f"{key} repeat a value: {values}")
        # strategy names, seeds, learner, rounds, labels per round, ... as al-runner run checks
        whole = replace(self.template, dataset=self.datasets[0], strategies=list(self.strategies),
                        seeds=list(self.seeds)).validate()  # fmt: skip
        self.strategies, self.seeds = whole.strategies, whole.seeds
        for key, table in (
            ("data_roots", self.data_roots),
            ("class_lists", self.class_lists),
            ("dataset_options", self.dataset_options),
        ):
            extra = sorted(set(table) - set(self.datasets))
            if extra:
                raise ALRunnerError(f"{key} names datasets not in the grid: {extra}")
        for name, options in self.dataset_options.items():
            unknown = sorted(set(options) - set(_DATASET_OPTIONS))
            if unknown:
                raise ALRunnerError(
                    f"dataset_options.{name}: unknown {unknown}; known: "
                    f"{', '.join(_DATASET_OPTIONS)}"
                )
            wrong = sorted(set(options) - set(DATASETS[name].options))
            if wrong:
                users = [n for n, e in DATASETS.items() if wrong[0] in e.options]
                raise ALRunnerError(
                    f"dataset_options.{name}: --{wrong[0].replace('_', '-')} does not apply to "
                    f"{name!r}, only to {', '.join(users)}"
                )
        running = set().union(*(stage_names(n) for n in self.strategies))
        extra = sorted(set(self.template.strategy_options) - running)
        if extra:
            raise ALRunnerError(f"strategy_options names strategies not in the grid: {extra}")
        g = float(self.gpus_per_run)
        if not (0 < g <= 1 or (g > 1 and g.is_integer())):
            raise ALRunnerError(
                f"gpus_per_run must be a fraction of one GPU or a whole number, got {g}"
            )
        if self.retries < 0:
            raise ALRunnerError(f"retries must be >= 0, got {self.retries}")
        for d in self.datasets:
            for e in self.embeddings:  # the cells' own settings (embedding, dataset options)
                self.run_config(RunSpec(d, self.strategies[0], e, self.seeds[0]), ".").validate()
        known = {f.name for f in fields(_embed_config())} - {"dataset", "method", "epochs"}
        extra = sorted(set(self.embedding_options) - known)
        if extra:
            raise ALRunnerError(f"unknown embedding_options {extra}; known: {sorted(known)}")
        for name, options in self.template.strategy_options.items():
            get_strategy(name, **options)  # an unknown parameter errors here, not in a worker
        return self

    def runs(self) -> list[RunSpec]:
        """Every cell of the grid, dataset-major."""
        return [
            RunSpec(d, s, e, seed)
            for d in self.datasets
            for e in self.embeddings
            for seed in self.seeds
            for s in self.strategies
        ]

    def run_config(self, spec: RunSpec, embedding_dir: str | os.PathLike) -> RunConfig:
        """The ``RunConfig`` of one run: the template with the cell put in."""
        from al_runner.strategies import stage_names

        stages = stage_names(spec.strategy)
        return replace(
            self.template,
            dataset=spec.dataset,
            strategies=[spec.strategy],
            seeds=[spec.seed],
            embedding=spec.embedding,
            embedding_dir=str(embedding_dir),
            data_root=self.data_roots.get(spec.dataset),
            class_list=self.class_lists.get(spec.dataset),
            **self.dataset_options.get(spec.dataset, {}),
            strategy_options={
                k: v for k, v in self.template.strategy_options.items() if k in stages
            },
        )


def _embed_config() -> type:
    from al_runner.embeddings import EmbedConfig

    return EmbedConfig
