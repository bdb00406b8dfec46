"""The Lepton (DGX Cloud Lepton) executor; speaks the REST API, never imports the SDK."""

from evalfleet.executors.lepton.executor import LeptonExecutor

__all__ = ["LeptonExecutor"]
