"""Tests of hrm-doctor on a cluster (a real single-node Slurm, started by the tests)."""
