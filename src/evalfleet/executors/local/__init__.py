"""Run on this machine: the model server as a process group, each task as a process."""
