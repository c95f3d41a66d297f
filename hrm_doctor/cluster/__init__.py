"""hrm-doctor on a cluster: Slurm jobs and job steps for trials and supervised runs, and the
file systems that nodes share (docs/cluster.md)."""
