"""The pieces the `hrm-train` recipe (`hrm_core/pretrain.py`) is built from.

One concept per module: `distributed` (torchrun, device, threads), `build` (data, network,
probe, seeds), `gradients` (one flat gradient buffer: all-reduce, norm, clipping, non-finite
count), `microbatch` (gradient accumulation), `stepsync` (the one host sync per step and what
crosses ranks with it), `steplog` (a step logged when its probe metrics are in), `checkpoint`
(atomic full checkpoints), `resume` (exact resume), `saving` (the loop's position and its
checkpoints), `control` (the live-patch channel of the doctor and the step boundary),
`evaluation`, `console`, `wandb_logger`, `stop` and `preflight`. The recipe reads top to
bottom; these modules hold what would otherwise clutter it.
"""
