"""Sweeps on a local Ray instance: same curves as runs one by one, resume, retries, bad grids."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("torch")
pytest.importorskip("faiss")
pytest.importorskip("ray")

import palm_bayes as pb
from al_runner.cli import main as al_main
from al_runner.errors import ALRunnerError
from al_runner.experiment.loop import RunConfig, run_experiment, state_path
from al_runner.sweep.run import RunSpec, SweepGrid, execute_run, run_sweep, start_ray

GRID = {
    "datasets": ["digits"],
    "strategies": ["random", "entropy"],  # names of unequal length
    "embeddings": ["raw", "pca"],
    "seeds": [0, 1],
    "learner": "linear",
    "rounds": 4,
    "labels_per_round": 20,
}


@pytest.fixture(scope="module")
def local_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    assert start_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference():
    """Every cell of GRID run on its own, in this process."""
    out = {}
    for spec in SweepGrid.from_dict(GRID).runs():
        cfg = RunConfig(
            spec.dataset, [spec.strategy], rounds=4, labels_per_round=20, seeds=[spec.seed],
            embedding=spec.embedding,
        )  # fmt: skip
        out[spec] = run_experiment(cfg, progress=False)["accuracy"].to_numpy().ravel()
    return out


def _assert_matches(curves, reference):
    assert curves.attrs["complete"] == 1
    for spec, acc in reference.items():
        cell = curves.sel(
            dataset=spec.dataset, strategy=spec.strategy, embedding=spec.embedding, seed=spec.seed
        )
        np.testing.assert_allclose(cell["accuracy"].to_numpy(), acc, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(cell["budget"].to_numpy(), [20, 40, 60, 80])


def _descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _listening_addresses(pids: set[int]) -> set[str]:
    """Local addresses of the TCP sockets in LISTEN state owned by ``pids`` (Linux /proc)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                addresses.add(cols[1].split(":")[0])
    return addresses


def test_local_ray_listens_on_loopback_only(local_ray):
    nodes = local_ray.nodes()
    assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")

    @local_ray.remote
    def ping():
        return os.getpid()

    local_ray.get([ping.remote() for _ in range(4)])  # start the workers too
    ray_pids = _descendants(os.getpid())
    listening = _listening_addresses(ray_pids)
    assert listening, "found no listening Ray sockets"
    # 127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/tcp{,6} write them
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    assert listening <= loopback, f"Ray listens beyond loopback: {listening}"


def test_grid_gives_the_same_curves_as_runs_one_by_one(local_ray, reference, tmp_path):
    result = run_sweep(SweepGrid.from_dict(GRID), tmp_path / "c.nc", progress=False)
    assert result.failed == {} and result.skipped == 0
    merged = xr.load_dataset(tmp_path / "c.nc", engine="h5netcdf")
    _assert_matches(merged, reference)
    curves = pb.load_curves(tmp_path / "c.nc")
    assert dict(curves.sizes) == {"dataset": 1, "strategy": 2, "embedding": 2, "seed": 2,
                                  "step": 4}  # fmt: skip
    # a second sweep finds every run finished and only merges
    again = run_sweep(SweepGrid.from_dict(GRID), tmp_path / "c.nc", progress=False)
    assert again.skipped == 8
    xr.testing.assert_identical(again.curves.drop_attrs(), result.curves.drop_attrs())


def _saved_rounds(results: Path) -> list[int]:
    counts = []
    for path in results.rglob("*.state.json"):
        try:
            runs = json.loads(path.read_text())["runs"]
            counts.append(sum(len(r["accuracy"]) for r in runs.values()))
        except (OSError, ValueError):
            counts.append(0)
    return counts


def test_killed_sweep_resumes_with_no_round_lost_or_repeated(local_ray, reference, tmp_path):
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in GRID.items()) + "\n")
    out, results = tmp_path / "c.nc", tmp_path / "c-runs"
    cmd = [sys.executable, "-m", "al_runner.cli", "sweep", str(grid_file), "--out", str(out),
           "--no-progress", "--max-concurrent", "1"]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": ""}
    driver = subprocess.Popen(cmd, start_new_session=True, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while sum(_saved_rounds(results)) < 6:  # one run done, the second one mid-way
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the sweep saved no rounds in 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        driver.wait()
    at_kill = _saved_rounds(results)
    assert not out.exists() and sum(at_kill) < 8 * 4  # interrupted before the end
    assert any(0 < n < 4 for n in at_kill) or len(at_kill) < 8
    result = run_sweep(SweepGrid.from_dict(GRID), out, progress=False)
    assert result.failed == {} and result.skipped == sum(n == 4 for n in at_kill)
    _assert_matches(xr.load_dataset(out, engine="h5netcdf"), reference)
    for spec in reference:  # the resume state holds each round once, in order
        run = json.loads(state_path(spec.path(results)).read_text())["runs"]
        (only,) = run.values()
        assert only["budget"] == [20, 40, 60, 80]
        assert len(set(only["labelled"])) == 80


def test_failing_run_is_retried_then_reported_while_others_finish(local_ray, tmp_path):
    grid = SweepGrid.from_dict({**GRID, "embeddings": ["raw"], "retries": 1})
    marks = tmp_path / "attempts"
    marks.mkdir()

    def flaky(config, out):  # defined here: Ray ships it to the workers by value
        name = f"{config.strategies[0]}-{config.seeds[0]}"
        with open(marks / name, "a") as fh:
            fh.write("attempt\n")
        attempts = len((marks / name).read_text().splitlines())
        if name == "entropy-1":
            raise ValueError("injected failure for entropy seed 1")
        if name == "random-0" and attempts == 1:
            raise RuntimeError("transient failure, first attempt only")
        return execute_run(config, out)

    result = run_sweep(grid, tmp_path / "c.nc", progress=False, runner=flaky)
    assert list(result.failed) == ["digits/raw/entropy/seed1"]
    assert "injected failure for entropy seed 1" in result.failed["digits/raw/entropy/seed1"]
    assert len((marks / "entropy-1").read_text().splitlines()) == 2  # 1 try + 1 retry
    assert len((marks / "random-0").read_text().splitlines()) == 2  # retried, then fine
    curves = xr.load_dataset(tmp_path / "c.nc", engine="h5netcdf")
    assert curves.attrs["complete"] == 0
    assert curves.attrs["failed_runs"] == "digits/raw/entropy/seed1"
    acc = curves["accuracy"].squeeze(["dataset", "embedding"])
    assert acc.sel(strategy="entropy", seed=1).isnull().all()
    assert acc.sel(strategy="random").notnull().all()
    assert acc.sel(strategy="entropy", seed=0).notnull().all()
    assert pb.load_curves(tmp_path / "c.nc").sizes["strategy"] == 2


def test_ssl_embedding_is_trained_once_per_dataset_before_its_runs(local_ray, tmp_path):
    grid = SweepGrid.from_dict({
        **GRID, "embeddings": ["simclr"], "seeds": [0], "rounds": 2, "embedding_epochs": 1,
        "embedding_options": {"batch_size": 64, "max_steps_per_epoch": 2},
    })  # fmt: skip
    result = run_sweep(grid, tmp_path / "c.nc", progress=False)
    assert result.failed == {}
    emb = tmp_path / "c-runs" / "embeddings"
    checkpoints = list(emb.glob("*.pt"))
    caches = list(emb.glob("features-*.npz"))
    assert len(checkpoints) == 1 and len(caches) == 1
    first_round = min(
        state_path(spec.path(tmp_path / "c-runs")).stat().st_mtime for spec in grid.runs()
    )
    assert caches[0].stat().st_mtime <= first_round
    assert result.curves["accuracy"].notnull().all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key(s) ['colour']"),
        ({"strategies": ["random", "psychic"]}, "unknown strategy 'psychic'"),
        ({"datasets": ["mnist-9"]}, "unknown dataset 'mnist-9'"),
        ({"embeddings": ["clip"]}, "unknown embedding 'clip'"),
        ({"seeds": [0, 0]}, "seeds repeat a value"),
        ({"learner": "svm"}, "unknown learner 'svm'"),
        ({"rounds": 0}, "rounds must be >= 1"),
        ({"strategy_options": {"probcover": {"delta": 0.5}}}, "not in the grid"),
        ({"strategy_options": {"entropy": {"colour": 1}}}, "'entropy': Entropy() takes no"),
        ({"embedding_options": {"colour": 1}}, "unknown embedding_options"),
        ({"data_roots": {"cifar10": "/x"}}, "data_roots names datasets not in the grid"),
        ({"gpus_per_run": 1.5}, "gpus_per_run"),
        ({"dataset_options": {"cifar10": {"imbalance": 5}}}, "not in the grid"),
        ({"dataset_options": {"digits": {"colour": 1}}}, "dataset_options.digits: unknown"),
        ({"dataset_options": {"digits": {"imbalance": 5}}}, "--imbalance does not apply"),
        ({"strategies": ["random>margin"]}, "needs a start budget"),
    ],
)
def test_bad_grids_error_clearly(change, message):
    with pytest.raises(ALRunnerError) as err:
        SweepGrid.from_dict({**GRID, **change})
    assert message in str(err.value)


def test_grid_schedules_and_dataset_options_reach_the_runs():
    grid = SweepGrid.from_dict(
        {**GRID, "strategies": ["random>margin@40"], "dataset_options": {"digits": {}}}
    )
    cfg = grid.run_config(grid.runs()[0], ".")
    assert cfg.strategies == ["random>margin@40"] and cfg.imbalance is None


def test_results_of_another_grid_are_not_mixed_in(tmp_path):
    spec = RunSpec("digits", "random", "raw", 0)
    path = spec.path(tmp_path / "c-runs")
    cfg = RunConfig("digits", ["random"], rounds=3, labels_per_round=20, seeds=[0])
    run_experiment(cfg, path, progress=False)
    with pytest.raises(ALRunnerError, match="holds runs of another grid"):
        run_sweep(SweepGrid.from_dict(GRID), tmp_path / "c.nc", progress=False)


def test_cli_sweep_reports_bad_grid_files(tmp_path, capsys):
    assert al_main(["sweep", str(tmp_path / "none.toml"), "--out", "c.nc"]) == 2
    assert "grid file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("datasets = [digits\n")
    assert al_main(["sweep", str(bad), "--out", "c.nc"]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    good = tmp_path / "g.toml"
    good.write_text('datasets = ["digits"]\nstrategies = ["random"]\n')
    assert al_main(["sweep", str(good), "--out", str(tmp_path / "c.csv")]) == 2
    assert "must be a netCDF file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("learner", "device", "cluster", "run_gpus", "embed_gpus"),
    [
        ("cnn", "auto", {"CPU": 8, "GPU": 2}, 1.0, 1),  # image learner on a GPU cluster
        ("linear", "auto", {"CPU": 8, "GPU": 2}, 0, 1),  # features: CPU; SSL training: GPU
        ("cnn", "cpu", {"CPU": 8, "GPU": 2}, 0, 0),  # the grid asks for the CPU
        ("resnet18", "auto", {"CPU": 2}, 0, 0),  # no GPU in the cluster
    ],
)
def test_runs_ask_ray_for_a_gpu_only_when_they_can_use_one(
    learner, device, cluster, run_gpus, embed_gpus
):
    from al_runner.sweep.run import _resources

    grid = SweepGrid.from_dict({**GRID, "learner": learner, "device": device})
    run, embed = _resources(grid, cluster)
    assert run == {"num_cpus": 1, "num_gpus": run_gpus}
    assert embed == {"num_cpus": 1, "num_gpus": embed_gpus}


def test_resource_requests_the_cluster_cannot_meet_error_clearly():
    from al_runner.sweep.run import _resources

    with pytest.raises(ALRunnerError, match="no GPU"):
        _resources(SweepGrid.from_dict({**GRID, "device": "cuda"}), {"CPU": 4})
    with pytest.raises(ALRunnerError, match="asks for 4 CPU"):
        _resources(SweepGrid.from_dict({**GRID, "threads": 4}), {"CPU": 2})
    half = SweepGrid.from_dict({**GRID, "learner": "cnn", "gpus_per_run": 0.25})
    assert _resources(half, {"CPU": 4, "GPU": 1})[0]["num_gpus"] == 0.25


def test_unreachable_cluster_address_errors_fast(tmp_path, capsys):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    good = tmp_path / "g.toml"
    good.write_text('datasets = ["digits"]\nstrategies = ["random"]\nrounds = 4\n')
    args = ["sweep", str(good), "--out", str(tmp_path / "c.nc"), "--address", f"127.0.0.1:{port}"]
    assert al_main(args) == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_lost_ray_system_process_restarts_local_ray_once_and_resumes(tmp_path, monkeypatch):
    """A dead raylet fails every run in flight; the driver restarts Ray once and resumes them."""
    import al_runner.sweep.run as sweep

    calls = []

    def fake_dispatch(grid, todo, configs, results, address, max_concurrent, progress, runner,
                      n_done):  # fmt: skip
        calls.append([spec.name for spec in todo])
        if len(calls) == 1:
            return {spec.name: sweep.SYSTEM_FAILURE + "LocalRayletDiedError" for spec in todo}
        for spec in todo:  # the second attempt runs for real, in this process
            execute_run(configs[spec], str(spec.path(results)))
        return {}

    monkeypatch.setattr(sweep, "_dispatch", fake_dispatch)
    grid = SweepGrid.from_dict(GRID | {"strategies": ["random"], "embeddings": ["raw"]})
    result = run_sweep(grid, tmp_path / "c.nc", progress=False)
    assert len(calls) == 2 and calls[0] == calls[1]
    assert result.failed == {}
    assert np.isfinite(result.curves["accuracy"]).all()
