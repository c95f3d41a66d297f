"""TRM's own semantics: the recursion and its gradient, the simplified halting, the carry's
telemetry names, the parameter counts of the paper's models, the config's checks."""

from __future__ import annotations

import pytest
import torch

from hrm_core.model import TRMACT, ACTLossHead, ConfigError, TRMConfig, build_model, module_groups

SUDOKU = {"vocab_size": 11, "seq_len": 81, "num_puzzle_identifiers": 1}


def tiny(**overrides: object) -> TRMConfig:
    values: dict[str, object] = {
        "vocab_size": 6,
        "seq_len": 8,
        "num_puzzle_identifiers": 3,
        "batch_size": 4,
        "H_cycles": 2,
        "L_cycles": 3,
        "L_layers": 1,
        "hidden_size": 32,
        "num_heads": 2,
        "expansion": 2.0,
        "halt_max_steps": 4,
        "halt_exploration_prob": 0.0,
        "forward_dtype": "float32",
        "puzzle_emb_len": 1,
    }
    values.update(overrides)
    return TRMConfig(**values)


def batch_for(config: TRMConfig, size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (size, config.seq_len)
    return {
        "inputs": torch.randint(0, config.vocab_size, shape, generator=g),
        "labels": torch.randint(0, config.vocab_size, shape, generator=g),
        "puzzle_identifiers": torch.randint(0, config.num_puzzle_identifiers, (size,), generator=g),
    }


def test_paper_models_have_the_paper_sizes():
    """TRM-Att ~7M and TRM-MLP ~5M parameters on Sudoku (the paper's table)."""
    with torch.device("meta"):
        att = build_model("trm", {**SUDOKU, "arch": {}})
        mlp = build_model("trm", {**SUDOKU, "arch": {"mlp_t": True, "pos_encodings": "none"}})
    assert sum(p.numel() for p in att.parameters()) == 6_828_034
    assert sum(p.numel() for p in mlp.parameters()) == 5_028_866
    assert att.config.num_positions == 81 + 16  # 16 puzzle-embedding positions by default


def test_recursion_order_and_which_calls_build_a_graph():
    """H_cycles=2, L_cycles=3: z z z y without grad, then z z z y with grad (the whole round)."""
    model = TRMACT(tiny()).train()
    batch = batch_for(model.config)
    calls: list[bool] = []
    model.inner.L_level.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    model(model.initial_carry(batch), batch)
    assert calls == [False] * 4 + [True] * 4


def test_answer_update_sees_no_input_and_latent_sees_answer_plus_input():
    model = TRMACT(tiny(H_cycles=1, L_cycles=1)).eval()
    batch = batch_for(model.config)
    injections: list[torch.Tensor] = []
    net = model.inner.L_level
    net.register_forward_pre_hook(lambda m, args: injections.append(args[1].clone()))
    carry = model.initial_carry(batch)
    with torch.no_grad():
        model(carry, batch)
    x = model.inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"], torch.float32)
    y0 = model.inner.H_init.expand_as(x)
    assert torch.allclose(injections[0], y0 + x)  # z <- net(z, y + x)
    assert not torch.allclose(injections[1], x)  # y <- net(y, z): z is the injection


def test_gradient_flows_through_the_whole_last_round():
    """Backward reaches the first latent update of the last round (HRM's one-step gradient
    would stop at the last one)."""
    model = TRMACT(tiny(H_cycles=1, L_cycles=3)).train()
    batch = batch_for(model.config)
    outs: list[torch.Tensor] = []
    model.inner.L_level.register_forward_hook(lambda m, i, o: outs.append(o))
    _, out = model(model.initial_carry(batch), batch)
    (grad_first,) = torch.autograd.grad(out["logits"].square().sum(), [outs[0]])
    assert grad_first.abs().sum() > 0


def test_simplified_halting_without_a_continue_head():
    model = TRMACT(tiny(halt_max_steps=4)).train()
    batch = batch_for(model.config)
    with torch.no_grad():
        model.inner.q_head.weight.zero_()
        model.inner.q_head.bias.copy_(torch.tensor([0.5, 9.0]))  # q_halt > 0: halt
    carry, out = model(model.initial_carry(batch), batch)
    assert out["halted"].all() and "q_continue_logits" not in out
    assert "target_q_continue" not in out
    with torch.no_grad():
        model.inner.q_head.bias.copy_(torch.tensor([-0.5, -9.0]))  # q_continue is ignored
    carry, out = model(model.initial_carry(batch), batch)
    assert not out["halted"].any()
    _, loss, metrics, _, _ = ACTLossHead(model)(model.initial_carry(batch), batch)
    assert "q_continue_loss" not in metrics and torch.isfinite(loss)


def test_continue_switch_brings_back_the_q_learning_target():
    model = TRMACT(tiny(no_ACT_continue=False)).train()
    batch = batch_for(model.config)
    _, out = model(model.initial_carry(batch), batch)
    assert {"q_continue_logits", "target_q_continue"} <= set(out)


def test_state_statistics_carry_trm_names_and_groups_have_one_network():
    model = TRMACT(tiny(L_layers=2)).train()
    batch = batch_for(model.config)
    _, out = model(model.initial_carry(batch), batch)
    for key in ("y_rms", "z_rms", "y_delta_rms", "z_delta_rms"):
        assert out[key].shape == (4,)
    assert "z_H_rms" not in out
    groups = module_groups(ACTLossHead(model))
    assert set(groups) == {"embed", "L", "L.0", "L.1", "lm_head", "q_head"}


def test_mlp_t_block_mixes_positions_with_an_mlp():
    model = TRMACT(tiny(mlp_t=True, pos_encodings="none", L_layers=2)).train()
    names = {n for n, _ in model.named_parameters()}
    assert "inner.L_level.layers.0.mlp_t.gate_up_proj.weight" in names
    assert not any("self_attn" in n or "embed_pos" in n for n in names)
    batch = batch_for(model.config)
    head = ACTLossHead(model)
    _, loss, *_ = head(head.initial_carry(batch), batch)
    loss.backward()
    assert model.inner.L_level.layers[0].mlp_t.gate_up_proj.weight.grad.abs().sum() > 0


def test_config_checks_name_the_key():
    with pytest.raises(ConfigError, match=r"arch\.pos_encodings"):
        tiny(pos_encodings="alibi")
    with pytest.raises(ConfigError, match=r"arch\.puzzle_emb_len"):
        tiny(puzzle_emb_len=1, puzzle_emb_ndim=64)
    with pytest.raises(ConfigError, match=r"arch\.mlp_t"):
        tiny(mlp_t="yes")
    assert tiny(puzzle_emb_ndim=0).prefix_len == 0
    assert tiny(puzzle_emb_len=0, puzzle_emb_ndim=40).prefix_len == 2  # ceil(40 / 32), as HRM
