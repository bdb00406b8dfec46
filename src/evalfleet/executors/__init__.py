"""Backends that run invocations (local processes, Slurm, Lepton, and any registered one).

`base.Executor` is the invocation flow, written once; each backend supplies its hooks.
`registry` says which backends exist.
"""

from evalfleet.executors.registry import Backend, get_executor, register

__all__ = ["Backend", "get_executor", "register"]
