"""Hydra configs of `hrm-train` (a package so that wheels ship the YAML files)."""
