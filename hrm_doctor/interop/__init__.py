"""Runs of other trainers as hrm-doctor runs: W&B and TensorBoard importers, and live follow.

Light at import time: wandb and tensorboard are imported only when a source is read.
"""
