"""The Lepton executor: for now it plans (`--dry-run`) and launches nothing.

`plan()` shows the exact requests a launch will make: the `POST /deployments` body of the
invocation's endpoint, how readiness is awaited, one `POST /jobs` body per task and the
teardown. The bodies come from `spec.py`; nothing here imports an HTTP client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evalfleet.exceptions import NotAvailableError
from evalfleet.executors.base import Invocation, JobStatus, unknown_statuses
from evalfleet.executors.lepton.spec import bodies, endpoint_name

_NOT_YET = "the Lepton executor cannot {what} yet: planning only (--dry-run) in this release"


class LeptonExecutor:
    """One Lepton endpoint per invocation (unless `deployment.type: none`), one job per task."""

    name = "lepton"

    def plan(self, invocation: Invocation) -> dict[str, Any]:
        """What launching would send to Lepton, as JSON-able data; contacts nothing.

        Raises ConfigError listing everything Lepton would refuse.
        """
        config = invocation.config
        deployment, jobs = bodies(invocation)
        readiness = None
        teardown: list[str] = []
        if deployment is not None:
            name = endpoint_name(invocation)
            platform = config.execution.lepton_platform.deployment
            readiness = {
                "poll": f"GET /deployments/{name}",
                "until": "Ready",
                "timeout_s": platform.endpoint_readiness_timeout,
                "health_probe": f"<external_endpoint>{config.deployment.endpoints.health}",
            }
            teardown = [f"DELETE /deployments/{name}"]
        return {
            "executor": self.name,
            "invocation_id": invocation.invocation_id,
            "output_dir": invocation.output_dir,
            "deployment": (
                None
                if deployment is None
                else {"method": "POST", "path": "/deployments", "body": deployment}
            ),
            "readiness": readiness,
            "jobs": [
                {
                    "job_id": job.job_id,
                    "task": job.task,
                    "method": "POST",
                    "path": "/jobs",
                    "body": body,
                }
                for job, body in zip(invocation.jobs, jobs, strict=True)
            ],
            "teardown": teardown,
        }

    def launch(self, invocation: Invocation, shown_config: dict[str, Any]) -> int:
        raise NotAvailableError(_NOT_YET.format(what="launch"))

    def status(self, record: Any) -> list[JobStatus]:
        # This backend cannot be asked yet: say so rather than guess.
        return unknown_statuses(record, "the lepton executor cannot report status in this release")

    def logs(self, record: Any, job_id: str | None, follow: bool) -> Iterator[str]:
        raise NotAvailableError(_NOT_YET.format(what="fetch logs"))

    def kill(self, record: Any) -> list[str]:
        raise NotAvailableError(_NOT_YET.format(what="kill an invocation"))

    def resume(self, record: Any) -> int:
        raise NotAvailableError(_NOT_YET.format(what="resume an invocation"))
