"""Connecting to a Ray cluster (the optional extra ``pip install -e ".[ray]"``).

Nothing here imports Ray at import time: :func:`require_ray` imports it when an engine asks, and
turns a missing install into one line naming the extra. :func:`connect` follows Ray's own rules
for where the cluster is:

* ``address=None`` and no ``RAY_ADDRESS`` in the environment: a private Ray instance is started on
  this machine (``num_cpus`` of them; the default is every core) and stopped when the run ends, even
  when a ``ray start`` cluster runs here too (join that one with ``address="auto"``);
* ``address="auto"``, ``"HOST:PORT"`` or ``RAY_ADDRESS`` set: that running cluster is joined
  (``ray start --head`` on one machine, ``ray start --address HOST:PORT`` on the others). If it
  cannot be reached the run stops with one line — it never falls back to a local instance, which
  would hide a lost cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Iterator

from gnnpretrain.errors import UserError

__all__ = ["RayNotInstalledError", "RayClusterError", "require_ray", "require_optuna", "connect", "probe_address",
           "add_engine_arguments"]

INSTALL_HINT = "pip install -e '.[ray]'"
#: Seconds a ``HOST:PORT`` address may take to accept a TCP connection before the run stops (Ray's own
#: client keeps retrying for minutes, which looks like a hang).
PROBE_TIMEOUT_S = 10.0


class RayNotInstalledError(UserError, ImportError):
    """``--engine ray`` without the extra installed."""


class RayClusterError(UserError, ConnectionError):
    """The Ray cluster named by ``--address`` / ``RAY_ADDRESS`` cannot be reached, or was lost."""


def require_ray():
    """``import ray``, or one line saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalledError(
            f"--engine ray needs Ray, which is not installed ({exc}); install the extra: {INSTALL_HINT}"
        ) from None
    return ray


def require_optuna(extra: str = "optuna"):
    """``import optuna``, or one line saying how to install it."""
    try:
        import optuna
    except ImportError as exc:
        raise UserError(
            f"--hpopt needs Optuna, which is not installed ({exc}); install the extra: pip install -e '.[{extra}]'"
        ) from None
    return optuna


def add_engine_arguments(parser, engine_help: str, default: str | None = "local") -> None:
    """The scripts' shared ``--engine local|ray`` (its help says what runs where) and ``--address`` flags."""
    parser.add_argument("--engine", default=default, choices=["local", "ray"], help=engine_help)
    parser.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                        help="with --engine ray: the Ray cluster to join (`ray start --head` prints it; 'auto' = the "
                        "cluster running on this machine); default: $RAY_ADDRESS, else a Ray instance of this machine. "
                        "An unreachable cluster is an error, never a local fallback")


def _unreachable(address: str, why: str) -> RayClusterError:
    return RayClusterError(
        f"cannot reach the Ray cluster at {address!r} ({why}); "
        "start it with `ray start --head` (and `ray start --address HOST:PORT` on the other machines), "
        "or drop --address (and RAY_ADDRESS) to run on a Ray instance of this machine"
    )


def probe_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """For a ``HOST:PORT`` address, check that something accepts TCP connections there, so a wrong
    address or a stopped head node is one line within ``timeout`` seconds. ``auto`` and ``ray://``
    addresses are left to Ray (``auto`` fails fast by itself when no cluster runs here)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RayClusterError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379) or 'auto'")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise _unreachable(address, f"no answer on port {port}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def connect(address: str | None = None, num_cpus: int | None = None) -> Iterator[dict]:
    """Within the block Ray is initialised; yields the cluster's resources (``ray.cluster_resources()``).

    An instance this function started is shut down on leaving; a cluster it joined is left running.
    If Ray is already initialised in this process (a test, a notebook), that session is used as is —
    unless ``address`` names another cluster, which is an error, never a silent substitution.
    """
    ray = require_ray()
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto") and "://" not in address and address != current:
            raise RayClusterError(f"this process is already connected to the Ray cluster at {current!r}, not "
                                  f"{address!r}; call ray.shutdown() first or drop --address")
        yield dict(ray.cluster_resources())
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address is None:
        # "local": always a new instance of this run's own. A bare ray.init() would join whatever
        # `ray start` cluster this machine last ran (Ray reads it from its temp folder), i.e. someone
        # else's cluster, torn down under this run when they stop it; joining one is --address auto
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    else:
        probe_address(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise _unreachable(address, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    try:
        yield dict(ray.cluster_resources())
    finally:
        ray.shutdown()
