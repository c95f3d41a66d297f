"""The pieces the `hrm-train` recipe (`hrm_core/pretrain.py`) is built from.

One concept per module: `distributed` (torchrun, device, threads), `gradients` (one flat gradient
buffer: all-reduce, norm, clipping, non-finite count), `checkpoint` (atomic full checkpoints and
exact resume), `control` (the live-patch channel of the doctor), `evaluation`, `host` (the one
host sync per step), `console`, `wandb_logger` and `preflight`. The recipe reads top to bottom;
these modules hold what would otherwise clutter it.
"""
