"""Ray sessions of a sweep: a local loopback-only instance or a cluster; Ray's failures."""

from __future__ import annotations

import logging
import os
from typing import Any

from al_runner.errors import ALRunnerError

__all__ = ["SYSTEM_FAILURE", "error_text", "start_ray", "system_errors"]

_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-node, loopback-only mode


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray: a new local instance on 127.0.0.1 (``address=None``) or a cluster.

    Returns whether this call started Ray (and should shut it down). An already initialised
    Ray session is reused as it is.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray._private import ray_constants
    except ImportError as exc:
        raise ALRunnerError("sweeps need Ray: pip install 'palm-bayes[sweep]'") from exc
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        # Ray enables token authentication on a new local instance and says so on every start;
        # the instance stays authenticated, the notice is dropped (a sweep shows its own bar)
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        # Ray's single-node mode: every Ray server binds to 127.0.0.1 only. The processes Ray
        # starts read the variable; this process read it when ray was imported.
        env_before = os.environ.get(_LOCAL_ONLY)
        flag_before = ray_constants.ENABLE_RAY_CLUSTER
        os.environ[_LOCAL_ONLY], ray_constants.ENABLE_RAY_CLUSTER = "0", False
        try:
            for attempt in (1, 2):  # Ray gives its raylet 30 s to start: a busy machine may not
                try:
                    ray.init(
                        address="local", num_cpus=num_cpus or os.cpu_count(),
                        object_store_memory=512 * 1024**2, _node_ip_address="127.0.0.1",
                        **common,
                    )  # fmt: skip
                    break
                except Exception as exc:  # Ray raises a bare Exception on a startup timeout
                    ray.shutdown()
                    if attempt == 2:
                        raise ALRunnerError(
                            f"could not start a local Ray instance ({exc}); is the machine "
                            "overloaded? rerun the command (finished runs are kept)"
                        ) from exc
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = flag_before
            if env_before is None:
                os.environ.pop(_LOCAL_ONLY, None)
            else:
                os.environ[_LOCAL_ONLY] = env_before
    else:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError) as exc:
            raise ALRunnerError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    return True


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (Ray itself retries for minutes)."""
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and the like: Ray resolves them (and fails fast when there is none)
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ALRunnerError(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` "
            "or leave out --address for a local instance"
        ) from exc


#: Prefix of the error of a run that Ray's own machinery lost (not the run's code).
SYSTEM_FAILURE = "Ray system failure: "


def system_errors(ray: Any) -> tuple[type, ...]:
    """Ray's exceptions for a lost raylet, node, worker process or object (not a task's bug)."""
    names = ("LocalRayletDiedError", "NodeDiedError", "WorkerCrashedError", "RaySystemError",
             "ObjectLostError", "OwnerDiedError")  # fmt: skip
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def error_text(exc: BaseException) -> str:
    """One line naming what failed in a Ray task (its cause, else the last line)."""
    cause = getattr(exc, "cause", None)
    if cause is not None and not isinstance(cause, type(exc)):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
