"""evalfleet: deploy a model where your GPUs are, benchmark it, track and export every run."""

__version__ = "0.1.0"

__all__ = ["__version__"]
