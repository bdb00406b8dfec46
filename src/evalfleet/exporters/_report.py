"""What an export did: where each task went, what was left out and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from evalfleet.exporters._gather import Skipped


@dataclass(frozen=True)
class Exported:
    invocation_id: str
    job_id: str
    task: str
    location: str  # run id, run URL or file
    created: bool  # False: an earlier export's run/row was updated


@dataclass
class ExportReport:
    destination: str
    target: str  # where, in words: "experiment 'x' at http://…", "summary.json, summary.csv"
    exported: list[Exported] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every task of every exported invocation was exported."""
        return not self.skipped

    def lines(self) -> list[str]:
        """One line of summary, then one per task left out."""
        created = sum(1 for item in self.exported if item.created)
        updated = len(self.exported) - created
        invocations = sorted({item.invocation_id for item in self.exported})
        how = ", ".join(
            part
            for part in (
                f"{created} new" if created else "",
                f"{updated} updated" if updated else "",
            )
            if part
        )
        lines = [
            f"{self.destination}: exported {len(self.exported)} task(s) of "
            f"{', '.join(invocations) or 'no invocation'} ({how or 'nothing'}) to {self.target}"
        ]
        lines += [
            f"{self.destination}: not exported {item.job_id} {item.task}: {item.reason}"
            for item in self.skipped
        ]
        return lines
