"""The Slurm backend: batch scripts rendered from an invocation (`render.py`), and the
executor that plans (and, in a later release, submits and watches) them."""
