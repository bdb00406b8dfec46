"""Every error evalfleet raises on purpose.

```
EvalFleetError                  exit_code 1
├── ConfigError                 exit_code 2  bad YAML, bad override, failed validation
├── UsageError                  exit_code 2  bad command-line use, unknown or ambiguous id
│   ├── NotFoundError                        no invocation/job matches an id or prefix
│   └── AmbiguousIdError                     a prefix matches several invocations
├── NotAvailableError           exit_code 2  a part that a later release provides
├── StoreError                  exit_code 1  the invocation database cannot be read/written
├── DeploymentError             exit_code 1  a backend refused or failed
│   ├── BackendRefused                       a backend API answered 4xx (its message kept)
│   └── BackendUnreachable                   a backend API did not answer (after retries)
├── DataError                   exit_code 1  benchmark data missing, not downloadable, or corrupt
├── EngineError                 exit_code 1  an evaluation could not finish
│   ├── EndpointUnreachable                  the endpoint did not answer within the retry budget
│   └── HarnessError                         a framework package's environment, command or run failed
└── ExportError                 exit_code 1  a tracker (MLflow, W&B) is unreachable or refused
```

The CLI shows an `EvalFleetError` as one line on stderr and exits with its `exit_code`;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class EvalFleetError(Exception):
    """Base class: a failure evalfleet understands and can explain in one line."""

    exit_code: int = 1


class ConfigError(EvalFleetError):
    """The configuration (file, override or merged result) is invalid.

    `problems` holds one line per problem, each naming the key path or file.
    """

    exit_code = 2

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(EvalFleetError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class NotFoundError(UsageError):
    """No invocation or job matches the given id or prefix."""


class AmbiguousIdError(UsageError):
    """A prefix matches more than one invocation; `candidates` lists them."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        self.prefix = prefix
        self.candidates = list(candidates)
        super().__init__(f"id prefix {prefix!r} is ambiguous: matches {', '.join(self.candidates)}")


class NotAvailableError(EvalFleetError):
    """The command exists, but the part it needs is not built yet."""

    exit_code = 2


class StoreError(EvalFleetError):
    """The invocation store could not be opened, read or written."""


class DeploymentError(EvalFleetError):
    """A backend (local process, Slurm, Lepton) refused or failed an operation."""


class BackendRefused(DeploymentError):
    """A backend's API refused a request (4xx); `status` is its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackendUnreachable(DeploymentError):
    """A backend's API could not be reached or kept failing (5xx) after retries."""


class DataError(EvalFleetError):
    """Benchmark data is not cached and cannot be downloaded, or fails its sha256 check."""


class EngineError(EvalFleetError):
    """An evaluation stopped before it could finish (answers so far stay cached)."""


class EndpointUnreachable(EngineError):
    """The endpoint could not be reached within the retry budget."""


class HarnessError(EngineError):
    """A task run by its framework package could not finish: its environment could not be
    built, its command not rendered, or the harness failed (the reason names which)."""


class ExportError(EvalFleetError):
    """Results could not be exported: the destination is unreachable, refused a write, or
    there is nothing finished to export."""
