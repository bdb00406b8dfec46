"""Backends that run invocations: local processes, Slurm, Lepton."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalfleet.executors.base import Executor


def get_executor(kind: str) -> Executor:
    """The executor for `execution.type`; imported lazily to keep the CLI fast."""
    if kind == "local":
        from evalfleet.executors.local.executor import LocalExecutor

        return LocalExecutor()
    if kind == "slurm":
        from evalfleet.executors.slurm.executor import SlurmExecutor

        return SlurmExecutor()
    if kind == "lepton":
        from evalfleet.executors.lepton.executor import LeptonExecutor

        return LeptonExecutor()
    raise ValueError(f"unknown executor {kind!r}")
