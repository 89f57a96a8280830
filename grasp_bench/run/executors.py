"""How a sweep's runs are executed: one after another in this process, or as Ray tasks.

An executor maps a function over jobs and reports each outcome as it arrives; it knows nothing
of experiments. Ray does the scheduling (no home-made queue here): one task per run, holding
one GPU where the cluster has GPUs (training and vLLM generation both run on it), and
``train.threads`` CPUs (1 if unset; Ray sets OMP_NUM_THREADS to match, so parallel runs do not
oversubscribe the cores). A run that fails is reported and the others go on; a sweep
run again resumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]
Started = Callable[["Job"], None]
Finished = Callable[["Job", Result | None, str | None], None]


@dataclass(frozen=True)
class Job:
    """One run to execute: its key, the plain-data payload the function gets, and the CPU
    threads it wants (None: the executor's default)."""

    key: str
    payload: dict[str, Any]
    threads: int | None = None


def _describe(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the worker's exception
    return f"{type(cause).__name__}: {cause}"


class LocalExecutor:
    """Sequential, in this process: the pipeline as ``grasp-bench run`` runs it."""

    def map(
        self,
        fn: Callable[[dict[str, Any]], Result],
        jobs: list[Job],
        started: Started,
        finished: Finished,
    ) -> None:
        for job in jobs:
            started(job)
            try:
                result = fn(job.payload)
            except Exception as exc:  # one failed run must not stop the others
                finished(job, None, _describe(exc))
            else:
                finished(job, result, None)


class RayExecutor:
    """One Ray task per run, on the cluster at ``address`` or on a local Ray instance. Every
    node needs grasp-bench installed, and the sweep file, its recipes and its output directory
    at the same paths as here (a shared filesystem)."""

    def __init__(self, address: str | None = None):
        self.address = address

    def map(
        self,
        fn: Callable[[dict[str, Any]], Result],
        jobs: list[Job],
        started: Started,
        finished: Finished,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError(
                "the ray executor needs Ray: pip install 'grasp-bench[ray]'"
            ) from None
        if not jobs:
            return
        owned = not ray.is_initialized()
        if owned:
            ray.init(address=self.address) if self.address else ray.init()
        try:
            resources = ray.cluster_resources()
            gpus, cpus = resources.get("GPU", 0), max(1, int(resources.get("CPU", 1)))
            remote = ray.remote(fn)
            pending = {}
            for job in jobs:
                # more threads than the cluster has would leave the task waiting forever
                ask = {"num_cpus": min(job.threads or 1, cpus), "num_gpus": 1 if gpus >= 1 else 0}
                ref = remote.options(name=job.key, max_retries=0, **ask).remote(job.payload)
                pending[ref] = job
            while pending:
                [ready], _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready)
                try:
                    result = ray.get(ready)
                except Exception as exc:
                    finished(job, None, _describe(exc))
                else:
                    finished(job, result, None)
        finally:
            if owned:
                ray.shutdown()
