"""Connecting to Dask: an existing client, a scheduler address, or a throw-away LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["local_cluster", "session"]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("tastebud.distributed needs Dask: pip install 'tastebud[dask]'") from exc
    return distributed


def local_cluster(n_workers: int = 2, threads_per_worker: int = 1, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` of worker *processes* on this machine, loopback only.

    Parameters
    ----------
    n_workers, threads_per_worker : int
        Worker processes and threads per worker. Kernels inside a task use the ``num_threads``
        given to the tastebud call, so ``threads_per_worker * num_threads`` should not exceed
        the cores a worker may use.
    **kwargs
        Passed to ``LocalCluster`` (defaults: ``processes=True``, ``host="127.0.0.1"`` for
        worker processes, ``dashboard_address=None``). Without a dashboard the scheduler's
        HTTP endpoints (health, metrics) bind to a free port on ``host`` rather than the
        default 8787, so several clusters can run side by side.
    """
    distributed = _distributed()
    options: dict[str, Any] = {
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
    }
    options.update(kwargs)
    if not options["processes"] and "host" not in kwargs:
        del options["host"]  # in-process workers talk inproc://, which takes no host
    if options["dashboard_address"] is None:
        scheduler_kwargs = {"dashboard_address": f"{options.get('host') or '127.0.0.1'}:0"}
        scheduler_kwargs.update(options.get("scheduler_kwargs") or {})
        options["scheduler_kwargs"] = scheduler_kwargs
    return distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, **options
    )


@contextmanager
def session(client: Any) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``client``, closing only what was opened here.

    ``client`` may be a ``distributed.Client`` (used as is, left open), a scheduler address
    such as ``"tcp://scheduler-host:8786"`` (connected and closed after), or ``None`` (a
    ``local_cluster()`` of 2 worker processes x 1 thread on loopback, shut down after).
    """
    distributed = _distributed()
    if isinstance(client, distributed.Client):
        with client.as_current():
            yield client
        return
    if isinstance(client, str):
        with distributed.Client(client, set_as_default=False) as owned, owned.as_current():
            yield owned
        return
    if client is not None:
        raise TypeError(
            "client must be a distributed.Client, a scheduler address string such as "
            f"'tcp://host:8786', or None; got {type(client).__name__}."
        )
    with (
        local_cluster() as cluster,
        distributed.Client(cluster, set_as_default=False) as owned,
        owned.as_current(),
    ):
        yield owned
