"""A local emulator of a DGX Cloud Lepton workspace, for tests and for trying evalfleet.

Run it as a process::

    python -m evalfleet.testing.lepton --port 0 --token T

It prints ``READY <workspace API base URL>`` once it listens. It serves the legacy
`/deployments` routes, `/jobs`, `/usersecrets`, `/dedicated-node-groups`, `/logs` and
`/workspace` of `reference/lepton-api.md` (§2, §5), with their state machines; runs each job's
`container.command` as a local process in its own working dir and its own Python environment
over the job image (`--job-python`; default: evalfleet's dependencies without evalfleet, so a
job runs the evalfleet its spec ships), with the job's envs (secret references resolved) and
nothing else of the host's environment but PATH; and serves each
deployment's external endpoint (`/ep/<name>/...`) by proxying to an endpoint simulator it
starts (or to `--model-server`), enforcing the deployment's tokens. A deployment's envs
`EMULATOR_DEFAULT_ANSWER` (what its simulator answers) and `EMULATOR_DEPLOYMENT_STATE`
(Error, Starting or Not Ready, for it alone) script its emulated container.

From Python, `run_emulator()` does the same in a subprocess and yields an `Emulator` with the
settings a client needs and helpers for secrets, faults and what is still alive.
"""

from evalfleet.testing.lepton._control import Emulator, EmulatorError, run_emulator

__all__ = ["Emulator", "EmulatorError", "run_emulator"]
