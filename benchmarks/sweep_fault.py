"""Fault test: kill a Ray worker node in the middle of a sweep; the sweep completes, nothing lost.

Starts a Ray head and a second (worker) node on this machine with ``ray start``, runs
``al-runner sweep`` against that cluster, kills the worker node's raylet (and with it the
runs it was executing) once a third of the rounds are saved, and checks that the sweep still
finishes every run with each round saved once, and with the same curves as the runs executed
one by one. Ray retries the lost tasks on the head; they resume from their last saved round.

It runs ``ray stop`` at the end: do not run it beside another Ray instance of yours.

    python benchmarks/sweep_fault.py
    python benchmarks/sweep_fault.py --client-port 10001   # the driver connects by ray://
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from al_runner.experiment.loop import RunConfig, run_experiment, state_path
from al_runner.sweep.run import SweepGrid

GRID = {
    "datasets": ["digits"],
    "strategies": ["random", "margin", "entropy", "coreset"],
    "seeds": [0, 1],
    "learner": "mlp",
    "rounds": 8,
    "labels_per_round": 20,
    "retries": 3,
}


def _ray(*args: str, env: dict[str, str]) -> str:
    exe = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def _saved(results: Path) -> dict[str, int]:
    counts = {}
    for path in results.rglob("*.state.json"):
        try:
            (run,) = json.loads(path.read_text())["runs"].values()
            counts[str(path.relative_to(results))] = len(run["accuracy"])
        except (OSError, ValueError):
            pass
    return counts


def _raylet_pid(port: int) -> int:
    out = subprocess.run(["pgrep", "-f", f"raylet.*node_manager_port={port}"],
                         capture_output=True, text=True).stdout.split()  # fmt: skip
    if not out:
        raise RuntimeError(f"no raylet with node manager port {port}")
    return int(out[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6411, help="head GCS port")
    parser.add_argument("--worker-port", type=int, default=6420, help="worker node manager port")
    parser.add_argument(
        "--client-port", type=int, default=None,
        help="connect the sweep through Ray Client (ray://127.0.0.1:PORT; needs ray[client])",
    )  # fmt: skip
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="sweep-fault-"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    grid_file = tmp / "grid.toml"
    grid_file.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in GRID.items()) + "\n")
    out, results = tmp / "curves.nc", tmp / "curves-runs"
    rounds_total = len(SweepGrid.from_dict(GRID).runs()) * GRID["rounds"]
    t_kill = None
    try:
        client = [] if args.client_port is None else [
            "--ray-client-server-port", str(args.client_port)]  # fmt: skip
        head = _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port",
                    str(args.port), "--num-cpus", "1", "--include-dashboard", "false",
                    "--disable-usage-stats", *client, env=env)  # fmt: skip
        address = next(
            line.split("--address=")[1].split()[0].strip("'\"")
            for line in head.splitlines()
            if "--address=" in line
        )
        _ray("start", "--address", address, "--num-cpus", "1", "--node-manager-port",
             str(args.worker_port), "--disable-usage-stats", env=env)  # fmt: skip
        worker = _raylet_pid(args.worker_port)
        print(f"Ray head and worker node at {address}; worker raylet pid {worker}")
        if args.client_port is not None:
            address = f"ray://127.0.0.1:{args.client_port}"
            print(f"the sweep connects through Ray Client at {address}")
        t0 = time.perf_counter()
        driver = subprocess.Popen(
            [sys.executable, "-m", "al_runner.cli", "sweep", str(grid_file), "--out", str(out),
             "--address", address, "--no-progress"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        at_kill: dict[str, int] = {}
        while driver.poll() is None:
            saved = _saved(results)
            if t_kill is None and sum(saved.values()) >= rounds_total // 3:
                os.kill(worker, signal.SIGKILL)
                t_kill, at_kill = time.perf_counter() - t0, saved
                print(f"killed the worker node at {t_kill:.1f} s, {sum(saved.values())} of "
                      f"{rounds_total} rounds saved; runs in progress: "
                      f"{sorted(k for k, n in saved.items() if n < GRID['rounds'])}")  # fmt: skip
            time.sleep(0.05)
        log = driver.stdout.read()
        wall = time.perf_counter() - t0
    finally:
        subprocess.run([shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray",
                        "stop", "--force"], env=env, capture_output=True)  # fmt: skip
    print(log[log.find("wrote ") :] if "wrote " in log else log[-1500:])
    if t_kill is None:
        print("the sweep ended before the kill; nothing was tested")
        return 1
    merged = xr.load_dataset(out, engine="h5netcdf")
    grid = SweepGrid.from_dict(GRID)
    rows, identical, ordered = [], True, True
    for spec in grid.runs():
        cfg = RunConfig(
            spec.dataset, [spec.strategy], learner=GRID["learner"], rounds=GRID["rounds"],
            labels_per_round=GRID["labels_per_round"], seeds=[spec.seed],
        )  # fmt: skip
        ref = run_experiment(cfg, progress=False)["accuracy"].to_numpy().ravel()
        got = (
            merged["accuracy"]
            .sel(
                dataset=spec.dataset,
                strategy=spec.strategy,
                embedding=spec.embedding,
                seed=spec.seed,
            )
            .to_numpy()
        )
        (run,) = json.loads(state_path(spec.path(results)).read_text())["runs"].values()
        expected = [GRID["labels_per_round"] * (k + 1) for k in range(GRID["rounds"])]
        ordered &= run["budget"] == expected and len(set(run["labelled"])) == expected[-1]
        same = bool(np.allclose(got, ref, rtol=0, atol=1e-12))
        identical &= same
        key = str(spec.path(results).with_name(spec.path(results).name + ".state.json")
                  .relative_to(results))  # fmt: skip
        rows.append((spec.name, at_kill.get(key, 0), len(run["accuracy"]), same))
    print(f"\nsweep exit status {driver.returncode}, {wall:.0f} s; worker killed at {t_kill:.0f} s")
    print(f"{'run':34s} {'rounds at kill':>14s} {'rounds at end':>14s} {'= one by one':>13s}")
    for name, before, after, same in rows:
        print(f"{name:34s} {before:14d} {after:14d} {str(same):>13s}")
    ok = driver.returncode == 0 and identical and ordered and merged.attrs["complete"] == 1
    print(f"every run complete, each round saved once, curves identical: {ok}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
