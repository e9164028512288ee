"""The al-runner command: list, a small run that palm_bayes reads, clear errors with exit 2."""

import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

import palm_bayes as pb
from al_runner.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "fashion-mnist", "imagenet100", "typiclust", "badge", "resnet18"):
        assert name in out


def test_run_writes_curves_and_resumes(tmp_path, capsys):
    out = tmp_path / "curves.nc"
    args = ["run", "--dataset", "digits", "--strategies", "random,margin", "--rounds", "4"]
    args += ["--labels-per-round", "10", "--seeds", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "margin" in printed and "40" in printed
    curves = pb.load_curves(out)
    assert set(curves.strategy.values) == {"random", "margin"}
    assert curves.attrs["learner"] == "linear"
    assert main(args) == 0  # finished state: resumes with nothing to do
    assert "resuming" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "nope"], "unknown dataset 'nope'; known: digits"),
        (["--dataset", "digits", "--strategies", "margin,foo"], "unknown strategy 'foo'"),
        (["--dataset", "digits", "--learner", "svm"], "unknown learner 'svm'"),
        (["--dataset", "digits", "--rounds", "0"], "--rounds: must be >= 1"),
        (["--dataset", "digits", "--seeds", "x"], "--seeds takes a count"),
        (["--dataset", "cifar10"], "needs --data-root"),
        (["--dataset", "digits", "--embedding", "dino"], "unknown embedding 'dino'"),
        (["--dataset", "digits", "--strategy-option", "delta=1"], "STRATEGY.KEY=VALUE"),
        (
            [
                "--dataset",
                "digits",
                "--strategies",
                "margin",
                "--strategy-option",
                "bald.samples=5",
            ],
            "names strategies not in the run",
        ),
        (["--dataset", "digits", "--rounds", "200"], "pool has only 1258"),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path, capsys, args, message):
    argv = ["run", *args, "--out", str(tmp_path / "c.nc"), "--no-progress"]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert "al-runner: error:" in err and message in err
    assert "Traceback" not in err


def test_out_must_be_netcdf(tmp_path, capsys):
    assert main(["run", "--dataset", "digits", "--out", str(tmp_path / "c.csv")]) == 2
    assert "must be a netCDF file" in capsys.readouterr().err


def test_console_script_module_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "al_runner.cli", "run", "--dataset", "x", "--out", "y.nc"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # nothing (not even a lock file) lands in the working copy
    )
    assert proc.returncode == 2 and proc.stderr.startswith("al-runner: error: unknown dataset")


def test_run_options_are_the_run_config_fields():
    from dataclasses import MISSING, fields

    from al_runner.cli import _config, build_parser
    from al_runner.experiment.config import RunConfig

    args = build_parser().parse_args(["run", "--dataset", "digits", "--out", "c.nc"])
    for f in fields(RunConfig):
        if f.name in ("dataset", "strategies", "strategy_options"):
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        assert getattr(args, f.name) == default, f.name
    argv = ["run", "--dataset", "digits", "--out", "c.nc", "--strategies", "random,margin",
            "--seeds", "2", "--strategy-option", "margin.x=1", "--no-proxies",
            "--image-size", "32"]  # fmt: skip
    config = _config(build_parser().parse_args(argv))
    assert config.strategies == ["random", "margin"] and config.seeds == [0, 1]
    assert config.strategy_options == {"margin": {"x": 1}}
    assert config.proxies is False and config.image_size == 32
