"""The resume state of an experiment: the labelled indices and measurements of every run.

The state is one JSON file beside the curves file (``<out>.state.json``)::

    {"version": 1, "config": {<settings that change the curves>},
     "runs": {"<strategy>/<seed>": {"labelled": [...], "accuracy": [...], "budget": [...],
                                     "select_seconds": [...], "train_seconds": [...],
                                     "proxies": {"<name>": [...], ...}}}}

:class:`RunState` reads and writes it (atomically); a file written by another setting of the
experiment is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from al_runner.errors import ALRunnerError
from al_runner.experiment.config import SSL_EMBEDDINGS

if TYPE_CHECKING:
    from al_runner.experiment.config import RunConfig

__all__ = ["STATE_VERSION", "RunRecord", "RunState", "config_key", "load_state_labelled",
           "state_path"]  # fmt: skip

STATE_VERSION = 1


def state_path(out: str | os.PathLike) -> Path:
    """The resume-state file kept beside the curves file ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".state.json")


def config_key(config: RunConfig) -> dict[str, Any]:
    """The settings of ``config`` that change its curves, as the state file records them."""
    key = asdict(config)
    key["budget"] = key.pop("labels_per_round")  # the name state files have always used
    for volatile in (
        "device", "threads", "data_root", "class_list", "labels", "split_file", "embedding_dir",
        "proxies", "confidence_delta",  # recorded beside the curves, they do not change them
        "stop_when", "label_free",  # so: a stopped run can be continued without the rule
    ):  # fmt: skip
        key.pop(volatile)
    for unset in ("embedding_file", "encoder_checkpoint", "imbalance", "image_size"):
        # popped when unset: keeps older state files valid
        if key[unset] is None:
            key.pop(unset)
    if config.embedding not in SSL_EMBEDDINGS:
        key.pop("embedding_epochs")
    return key


@dataclass
class RunRecord:
    """One run (a strategy and a seed): its labelled set and per-round measurements."""

    labelled: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    budget: list[int] = field(default_factory=list)
    select_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    proxies: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        """Finished rounds."""
        return len(self.accuracy)

    def add_round(
        self,
        labelled: np.ndarray,
        accuracy: float,
        select_seconds: float,
        train_seconds: float,
        proxies: dict[str, float] | None = None,
    ) -> None:
        """Record a finished round; a proxy first seen late is NaN in the earlier rounds."""
        step = self.rounds
        for key, value in (proxies or {}).items():
            self.proxies.setdefault(key, [float("nan")] * step).append(value)
        self.labelled = np.asarray(labelled).tolist()
        self.accuracy.append(accuracy)
        self.budget.append(int(len(labelled)))
        self.select_seconds.append(select_seconds)
        self.train_seconds.append(train_seconds)

    def series(self, name: str) -> list[float]:
        """The per-round values of a measurement or a proxy (``[]`` when not recorded)."""
        if name in ("accuracy", "budget", "select_seconds", "train_seconds"):
            return getattr(self, name)
        return self.proxies.get(name, [])

    @classmethod
    def from_dict(cls, run: dict[str, Any]) -> RunRecord:
        """Read one run of a state file."""
        return cls(**{k: run[k] for k in (
            "labelled", "accuracy", "budget", "select_seconds", "train_seconds", "proxies"
        ) if k in run})  # fmt: skip


@dataclass
class RunState:
    """The resume state of an experiment: its settings key and every run's record.

    Examples
    --------
    >>> state = RunState(config={"dataset": "digits"})
    >>> state.run("random", 0, create=True).rounds
    0
    >>> RunState.from_json(state.to_json()) == state
    True
    """

    config: dict[str, Any]
    runs: dict[str, RunRecord] = field(default_factory=dict)
    version: int = STATE_VERSION

    @classmethod
    def new(cls, config: RunConfig) -> RunState:
        """An empty state for ``config``."""
        return cls(config=config_key(config))

    def run(self, strategy: str, seed: int, *, create: bool = False) -> RunRecord | None:
        """The record of one run (created empty when ``create``; else None when absent)."""
        key = f"{strategy}/{seed}"
        if create and key not in self.runs:
            self.runs[key] = RunRecord()
        return self.runs.get(key)

    @property
    def rounds_done(self) -> int:
        """Finished rounds of all runs together."""
        return sum(r.rounds for r in self.runs.values())

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> str:
        """The state file's text."""
        return json.dumps({
            "version": self.version, "config": self.config,
            "runs": {k: asdict(r) for k, r in self.runs.items()},
        })  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> RunState:
        """Parse a state file's text (raises ``ValueError``/``KeyError`` when malformed)."""
        raw = json.loads(text)
        runs = {k: RunRecord.from_dict(r) for k, r in raw["runs"].items()}
        return cls(config=raw["config"], runs=runs, version=raw.get("version", -1))

    def save(self, path: str | os.PathLike) -> None:
        """Write the state file atomically."""
        from palm_bayes.data.contract import atomic_write

        text = self.to_json()
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def read(cls, path: str | os.PathLike) -> RunState:
        """Read a state file without checking its settings."""
        try:
            return cls.from_json(Path(path).read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ALRunnerError(
                f"resume state {path} is unreadable ({exc}); delete it to start over"
            ) from exc

    @classmethod
    def load(cls, path: str | os.PathLike, config: RunConfig) -> RunState:
        """Read a state file and check that it belongs to ``config``'s settings."""
        state = cls.read(path)
        if state.version != STATE_VERSION or state.config != config_key(config):
            raise ALRunnerError(
                f"{path} belongs to a run with other settings; use another --out, or "
                "--overwrite to start over"
            )
        return state


def load_state_labelled(out: str | os.PathLike, strategy: str, seed: int) -> np.ndarray:
    """Labelled pool indices (acquisition order) of one run, read from its resume state."""
    run = RunState.read(state_path(out)).run(strategy, seed)
    if run is None:
        raise ALRunnerError(f"no run {strategy}/{seed} in {state_path(out)}")
    return np.asarray(run.labelled, dtype=np.int64)
