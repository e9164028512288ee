"""Real learning curves from the Learning Curve Database (LCDB; Mohr et al. 2022, MIT).

LCDB holds ~1.9M test accuracies of 20 scikit-learn learners on 246 OpenML datasets at
geometrically spaced training-set sizes, 25 seeds each. Its CSV ships in the PyPI sdist
``lcdb``; :func:`fetch_lcdb` extracts it into a cache folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from palm_bayes.data.load import load_curves
from palm_bayes.errors import PalmInputError

__all__ = ["lcdb_curves", "lcdb_csv_path", "fetch_lcdb", "LCDB_CITATION"]

LCDB_CITATION = (
    "LCDB: Mohr, Wever, Tornede, Hullermeier (2022), 'LCDB 1.0: An Extensive Learning Curves "
    "Database for Classification Tasks', ECML-PKDD; MIT license; PyPI package lcdb"
)
_COLUMNS = [
    "openmlid",
    "learner",
    "size_train",
    "size_test",
    "outer_seed",
    "inner_seed",
    "score_test",
]


def _default_cache() -> Path:
    return Path.home() / ".cache" / "palm-bayes" / "lcdb"


def lcdb_csv_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Locate LCDB's ``database-accuracy.csv``.

    Looks at ``$PALM_LCDB_CSV``, then ``<cache_dir>/database-accuracy.csv`` (default
    ``~/.cache/palm-bayes/lcdb``).
    """
    env = os.environ.get("PALM_LCDB_CSV")
    if env:
        if not Path(env).is_file():
            raise PalmInputError(f"PALM_LCDB_CSV points to {env}, which is not a file")
        return Path(env)
    path = Path(cache_dir or _default_cache()) / "database-accuracy.csv"
    if not path.is_file():
        raise PalmInputError(
            f"LCDB's database-accuracy.csv is not at {path}; run "
            "`python -m palm_bayes.data.lcdb` (downloads the lcdb sdist and extracts the CSV) or "
            "set PALM_LCDB_CSV"
        )
    return path


def _index_url() -> str:
    """The package index pip is configured with (``PIP_INDEX_URL``), else PyPI."""
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _sdist_link(index: str, name: str, version: str) -> tuple[str, str]:
    """URL and sha256 of ``<name>-<version>.tar.gz`` from a PEP 691 (JSON) simple index."""
    request = urllib.request.Request(
        f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
    except (OSError, ValueError, KeyError) as err:
        raise PalmInputError(f"cannot list {name} on the package index {index}: {err}") from None
    wanted = f"{name}-{version}.tar.gz"
    for entry in files:
        if entry.get("filename") == wanted and "sha256" in entry.get("hashes", {}):
            return urllib.parse.urljoin(f"{index}/{name}/", entry["url"]), entry["hashes"]["sha256"]
    raise PalmInputError(f"{wanted} (with a sha256) is not on the package index {index}")


def fetch_lcdb(cache_dir: str | os.PathLike | None = None, version: str = "0.1.0") -> Path:
    """Download the ``lcdb`` sdist and extract ``database-accuracy.csv`` (~150 MB).

    The archive is fetched as a file from the package index (``PIP_INDEX_URL`` or PyPI), its
    sha256 checked against the index's, and only the CSV is read out of it: nothing of the
    package is built or run.
    """
    target = Path(cache_dir or _default_cache())
    target.mkdir(parents=True, exist_ok=True)
    url, sha256 = _sdist_link(_index_url(), "lcdb", version)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = Path(tmp) / f"lcdb-{version}.tar.gz"
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=180) as response, sdist.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise PalmInputError(f"{url}: sha256 mismatch (download corrupt or tampered with)")
        with tarfile.open(sdist) as tar:
            member = next(
                (m for m in tar.getmembers() if m.name.endswith("database-accuracy.csv")), None
            )
            source = tar.extractfile(member) if member is not None else None
            if source is None:
                raise PalmInputError(f"{sdist.name} has no readable database-accuracy.csv")
            fd, partial = tempfile.mkstemp(dir=target, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(partial, target / "database-accuracy.csv")
    return target / "database-accuracy.csv"


def _short(learner: str) -> str:
    return learner.rsplit(".", 1)[-1]


def lcdb_curves(
    csv_path: str | os.PathLike | None = None,
    *,
    n_curves: int | None = None,
    openml_ids: Sequence[int] | None = None,
    learners: Sequence[str] | None = None,
    min_budgets: int = 10,
    seed: int = 0,
) -> xr.Dataset:
    """LCDB curves in the curves contract.

    ``dataset`` is ``openml-<id>``, ``strategy`` the learner (short name), ``seed`` is
    ``outer_seed * 100 + inner_seed``, ``budget`` the training-set size, ``accuracy`` the test
    accuracy and ``n_test`` the test-set size.

    Parameters
    ----------
    csv_path : path, optional
        LCDB's ``database-accuracy.csv`` (default :func:`lcdb_csv_path`).
    n_curves : int, optional
        Pick this many (dataset, learner) curves at random (``numpy.random.default_rng(seed)``).
    openml_ids, learners : sequence, optional
        Keep only these datasets / learners (short or full learner names).
    min_budgets : int
        Keep curves with at least this many distinct budgets.
    seed : int
        Seed of the random pick.
    """
    path = Path(csv_path) if csv_path is not None else lcdb_csv_path()
    if not path.is_file():
        raise PalmInputError(f"no LCDB CSV at {path}")
    frame = pd.read_csv(
        path,
        usecols=_COLUMNS,
        dtype={
            "openmlid": "int32",
            "learner": "category",
            "size_train": "int64",
            "size_test": "int64",
            "outer_seed": "int16",
            "inner_seed": "int16",
            "score_test": "float64",
        },
    )
    frame["learner"] = frame["learner"].map(_short).astype(str)
    if openml_ids is not None:
        frame = frame[frame["openmlid"].isin(list(openml_ids))]
    if learners is not None:
        frame = frame[frame["learner"].isin([_short(x) for x in learners])]
    frame = frame.dropna(subset=["score_test"])
    sizes = frame.groupby(["openmlid", "learner"])["size_train"].nunique()
    keys = sizes[sizes >= min_budgets].index
    if n_curves is not None and n_curves < len(keys):
        pick = np.random.default_rng(seed).choice(len(keys), size=n_curves, replace=False)
        keys = keys[np.sort(pick)]
    if len(keys) == 0:
        raise PalmInputError("no LCDB curve matches the selection")
    frame = frame.set_index(["openmlid", "learner"]).loc[keys].reset_index()
    frame = frame.sort_values(["openmlid", "learner", "outer_seed", "inner_seed", "size_train"])
    frame = frame.drop_duplicates(["openmlid", "learner", "outer_seed", "inner_seed", "size_train"])
    long = pd.DataFrame(
        {
            "dataset": "openml-" + frame["openmlid"].astype(str),
            "strategy": frame["learner"],
            "embedding": "none",
            "seed": frame["outer_seed"].astype(int) * 100 + frame["inner_seed"].astype(int),
            "budget": frame["size_train"].astype(float),
            "accuracy": frame["score_test"],
            "n_test": frame["size_test"],
        }
    )
    curves = load_curves(long, percent=False)
    curves.attrs.update({"source": LCDB_CITATION, "selection_seed": seed})
    return curves


if __name__ == "__main__":  # pragma: no cover - convenience download
    print(fetch_lcdb())
