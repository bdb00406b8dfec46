"""Session fixtures shared by the backends' tests: the real single-node Slurm cluster and
its ssh login (started once per session, for tests/executors/slurm and the contract suite)."""

from tests.slurm_cluster import slurm_cluster, ssh_login  # noqa: F401  (session fixtures)
