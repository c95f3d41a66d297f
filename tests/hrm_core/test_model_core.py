"""The inner HRM and the model as a whole: shapes, dtypes, size, init, one-step gradient, speed."""

from __future__ import annotations

import time

import pytest
import torch

from hrm_core.model import (
    HRMACT,
    ACTCarry,
    ACTLossHead,
    ConfigError,
    HRMConfig,
    InnerCarry,
    build_model,
    module_groups,
)

SUDOKU = {"vocab_size": 11, "seq_len": 81, "num_puzzle_identifiers": 1}


def _param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_sudoku_architecture_has_the_reference_parameter_count() -> None:
    with torch.device("meta"):  # no memory, no init cost
        model = build_model("hrm_v1", {**SUDOKU, "arch": {"name": "hrm_v1"}})
    assert _param_count(model) == 27_275_266
    with torch.device("meta"):
        learned = build_model("hrm_v1", {**SUDOKU, "arch.pos_encodings": "learned"})
    assert _param_count(learned) == 27_275_266 + (81 + 1) * 512


def test_state_dict_uses_reference_names_and_saves_the_puzzle_table(make_config) -> None:
    model = HRMACT(make_config())
    keys = set(model.state_dict())
    for key in (
        "inner.embed_tokens.embedding_weight",
        "inner.lm_head.weight",
        "inner.q_head.bias",
        "inner.puzzle_emb.weights",
        "inner.H_level.layers.0.self_attn.qkv_proj.weight",
        "inner.L_level.layers.0.mlp.gate_up_proj.weight",
        "inner.H_init",
        "inner.L_init",
    ):
        assert key in keys
    assert not any("local_" in k or "cached" in k for k in keys)
    names = {n for n, _ in model.named_parameters()}
    assert "inner.puzzle_emb.weights" not in names  # a buffer: not counted, not in Adam


def test_init_q_head_puzzle_embedding_and_carry_init_states(make_config) -> None:
    torch.manual_seed(0)
    model = HRMACT(make_config(hidden_size=512, num_heads=8))
    inner = model.inner
    assert torch.equal(inner.q_head.weight, torch.zeros(2, 512))
    assert torch.equal(inner.q_head.bias, torch.full((2,), -5.0))
    assert torch.equal(inner.puzzle_emb.weights, torch.zeros(5, 512))
    assert inner.H_init.shape == (512,) and inner.H_init.abs().max() <= 2.28
    assert not torch.equal(inner.H_init, inner.L_init)
    emb_std = inner.embed_tokens.embedding_weight.std().item()
    assert abs(emb_std - 512**-0.5) < 0.01


@pytest.mark.parametrize("forward_dtype", ["float32", "bfloat16"])
def test_output_shapes_and_dtypes(make_config, make_batch, forward_dtype) -> None:
    config = make_config(forward_dtype=forward_dtype)
    model = HRMACT(config).train()
    batch = make_batch(config, 3)
    carry = model.initial_carry(batch)
    carry, out = model(carry, batch)
    dtype = getattr(torch, forward_dtype)
    positions = config.seq_len + 1  # one puzzle-embedding position
    assert out["logits"].shape == (3, config.seq_len, config.vocab_size)
    assert out["logits"].dtype == dtype
    for key in ("q_halt_logits", "q_continue_logits", "target_q_continue"):
        assert out[key].shape == (3,) and out[key].dtype == torch.float32
    for key in ("z_H_rms", "z_L_rms", "z_H_delta_rms", "z_L_delta_rms"):
        assert out[key].shape == (3,) and out[key].dtype == torch.float32
    assert out["halted"].dtype == torch.bool and out["steps"].dtype == torch.int32
    assert carry.inner_carry.z_H.shape == (3, positions, config.hidden_size)
    assert carry.inner_carry.z_H.dtype == dtype
    assert not carry.inner_carry.z_H.requires_grad and not carry.inner_carry.z_L.requires_grad


def test_auto_forward_dtype_is_fp32_on_cpu(make_config, make_batch) -> None:
    config = make_config(forward_dtype="auto")
    model = HRMACT(config)
    batch = make_batch(config, 2)
    _, out = model(model.initial_carry(batch), batch)
    assert out["logits"].dtype == torch.float32


@pytest.mark.parametrize(
    "overrides",
    [
        {"pos_encodings": "learned"},
        {"puzzle_emb_ndim": 0},
        {"puzzle_emb_ndim": 40},  # not a multiple of hidden: 2 prefix positions, zero-padded
    ],
)
def test_variants_run_forward_and_backward(make_config, make_batch, overrides) -> None:
    config = make_config(**overrides)
    head = ACTLossHead(HRMACT(config).train())
    batch = make_batch(config, 2)
    carry, loss, _, out, _ = head(head.initial_carry(batch), batch)
    loss.backward()
    assert carry.inner_carry.z_H.shape[1] == config.seq_len + config.puzzle_emb_len
    assert out["logits"].shape == (2, config.seq_len, config.vocab_size)


def _run_inner(model: HRMACT, batch: dict[str, torch.Tensor]):
    inner = model.inner
    size = batch["inputs"].shape[0]
    carry = inner.reset_carry(
        torch.ones(size, dtype=torch.bool), inner.empty_carry(size, torch.device("cpu"))
    )
    return inner, carry


def _loss_of(z_H: torch.Tensor, inner) -> torch.Tensor:
    logits = inner.lm_head(z_H)[:, inner.puzzle_emb_len :]
    q = inner.q_head(z_H[:, 0])
    return logits.square().mean() + q.sum()


def test_one_step_gradient_matches_a_hand_unrolled_reference(make_config, make_batch) -> None:
    """H_cycles=2, L_cycles=3: updates L L L H L L run without grad, only the final L, H carry it."""
    torch.manual_seed(0)
    model = HRMACT(make_config(H_cycles=2, L_cycles=3)).train()
    batch = make_batch(model.config, 3)
    inner, carry = _run_inner(model, batch)
    params = [p for p in model.parameters()]

    new_carry, logits, (q_halt, q_continue) = inner(carry, batch)
    loss = logits.square().mean() + q_halt.sum() + q_continue.sum()
    grads = torch.autograd.grad(loss, params, allow_unused=True)

    # By hand, unrolled: the same arithmetic as HRM_NOTES describes it.
    x = inner.input_embeddings(batch["inputs"], batch["puzzle_identifiers"], torch.float32)
    rope = inner.rope()
    L, H = inner.L_level, inner.H_level
    with torch.no_grad():
        z_H, z_L = carry.z_H, carry.z_L
        z_L = L(z_L, z_H + x, rope)
        z_L = L(z_L, z_H + x, rope)
        z_L = L(z_L, z_H + x, rope)
        z_H = H(z_H, z_L, rope)
        z_L = L(z_L, z_H + x, rope)
        z_L = L(z_L, z_H + x, rope)
    z_L = L(z_L, z_H + x, rope)  # the last L-update, with gradient
    z_H = H(z_H, z_L, rope)  # the last H-update, with gradient
    hand_loss = _loss_of(z_H, inner)
    hand_grads = torch.autograd.grad(hand_loss, params, allow_unused=True, retain_graph=True)

    assert torch.allclose(loss, hand_loss)
    for (name, _), g, h in zip(model.named_parameters(), grads, hand_grads, strict=True):
        assert (g is None) == (h is None), name
        if g is not None:
            assert torch.allclose(g, h, atol=1e-6), name
    assert torch.equal(new_carry.z_H, z_H.detach())
    assert torch.equal(new_carry.z_L, z_L.detach())

    # The test has teeth: full backpropagation through all updates gives other gradients.
    z_H, z_L = carry.z_H, carry.z_L
    for _h_cycle in range(2):
        for _l_cycle in range(3):
            z_L = L(z_L, z_H + x, rope)
        z_H = H(z_H, z_L, rope)
    full = torch.autograd.grad(_loss_of(z_H, inner), list(L.parameters()))
    one_step = torch.autograd.grad(hand_loss, list(L.parameters()), allow_unused=True)
    assert not torch.allclose(full[0], one_step[0])


def test_only_the_final_l_and_h_updates_build_a_graph(make_config, make_batch) -> None:
    model = HRMACT(make_config(H_cycles=3, L_cycles=2)).train()
    batch = make_batch(model.config, 2)
    calls: list[tuple[str, bool]] = []
    model.inner.L_level.register_forward_hook(lambda m, i, o: calls.append(("L", o.requires_grad)))
    model.inner.H_level.register_forward_hook(lambda m, i, o: calls.append(("H", o.requires_grad)))
    inner, carry = _run_inner(model, batch)
    inner(carry, batch)
    expected_order = (["L"] * 2 + ["H"]) * 3
    assert [c[0] for c in calls] == expected_order
    assert [c[1] for c in calls] == [False] * 7 + [True, True]


def test_gradients_reach_every_trained_tensor_including_puzzle_rows(
    make_config, make_batch
) -> None:
    config = make_config()
    model = HRMACT(config).train()
    batch = make_batch(config, 4)
    head = ACTLossHead(model)
    _, loss, *_ = head(head.initial_carry(batch), batch)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
    assert model.puzzle_emb.local_weights.grad.shape == (4, config.puzzle_emb_ndim)
    assert model.puzzle_emb.local_weights.grad.abs().sum() > 0
    assert torch.equal(model.puzzle_emb.local_ids, batch["puzzle_identifiers"])


def test_no_gradient_crosses_act_segments(make_config, make_batch) -> None:
    config = make_config()
    model = HRMACT(config).train()
    batch = make_batch(config, 2)
    carry, out1 = model(model.initial_carry(batch), batch)
    assert out1["logits"].requires_grad
    assert not carry.inner_carry.z_H.requires_grad and not carry.inner_carry.z_L.requires_grad
    _, out2 = model(carry, batch)
    loss2 = out2["logits"].square().sum() + out2["q_halt_logits"].sum()
    (grad_into_segment_1,) = torch.autograd.grad(loss2, [out1["logits"]], allow_unused=True)
    assert grad_into_segment_1 is None


def test_carry_round_trips_through_a_flat_dict(make_config, make_batch) -> None:
    config = make_config()
    model = HRMACT(config)
    batch = make_batch(config, 2)
    carry, _ = model(model.initial_carry(batch), batch)
    back = ACTCarry.from_dict(carry.to_dict())
    assert isinstance(back.inner_carry, InnerCarry)
    assert torch.equal(back.inner_carry.z_L, carry.inner_carry.z_L)
    assert back.current_data.keys() == carry.current_data.keys()


def test_same_seed_gives_identical_models_and_training_steps(make_config, make_batch) -> None:
    config = make_config(halt_exploration_prob=0.5)
    batch = make_batch(config, 6)

    def run() -> tuple[dict[str, torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(123)
        head = ACTLossHead(build_model("hrm_v1", config).train())
        carry = head.initial_carry(batch)
        for _ in range(3):
            carry, loss, *_ = head(carry, batch)
        loss.backward()
        return head.state_dict(), carry.steps, [p.grad for p in head.parameters()]

    state_a, steps_a, grads_a = run()
    state_b, steps_b, grads_b = run()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert torch.equal(steps_a, steps_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))


def test_hidden_64_forward_backward_is_well_under_a_second(make_config, make_batch) -> None:
    config = make_config(hidden_size=64, num_heads=4, H_layers=2, L_layers=2, **SUDOKU)
    head = ACTLossHead(HRMACT(config).train())
    batch = make_batch(config, 8)
    carry = head.initial_carry(batch)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        carry, loss, *_ = head(carry, batch)
        loss.backward()
        best = min(best, time.perf_counter() - start)
    assert best < 0.5, f"one ACT step (fwd + target pass + bwd) took {best:.3f} s"


def test_module_groups_name_telemetry_groups(make_config) -> None:
    groups = module_groups(ACTLossHead(HRMACT(make_config(pos_encodings="learned", L_layers=2))))
    assert set(groups) == {"embed", "H", "L", "H.0", "L.0", "L.1", "lm_head", "q_head"}
    assert len(groups["embed"]) == 2


def test_config_from_trainer_dict_and_errors_name_the_key() -> None:
    cfg = HRMConfig.from_dict(
        {
            **SUDOKU,
            "batch_size": 32,
            "lr": 1e-4,  # a trainer key: ignored
            "arch": {
                "name": "hrm_v1",
                "H_cycles": 3,
                "loss": {"loss_type": "softmax_cross_entropy"},
            },
            "arch.L_cycles": 5,
        }
    )
    assert (cfg.H_cycles, cfg.L_cycles, cfg.batch_size, cfg.loss_type) == (3, 5, 32, "softmax")
    assert cfg.puzzle_emb_ndim == cfg.hidden_size == 512
    with pytest.raises(ConfigError, match=r"arch\.H_cycle: unknown key"):
        HRMConfig.from_dict({**SUDOKU, "arch": {"H_cycle": 3}})
    with pytest.raises(ConfigError, match=r"arch\.hidden_size"):
        HRMConfig(**SUDOKU, hidden_size=100, num_heads=8)
    with pytest.raises(ConfigError, match=r"arch\.halt_exploration_prob"):
        HRMConfig(**SUDOKU, halt_exploration_prob=1.5)
    with pytest.raises(ConfigError, match=r"^seq_len: missing"):
        HRMConfig.from_dict({"vocab_size": 11})
    with pytest.raises(ConfigError, match=r"arch\.name: unknown architecture 'hrm_v2'"):
        build_model("hrm_v2", cfg)
    with pytest.raises(ConfigError, match=r"arch\.name: trm needs a TRMConfig"):
        build_model("trm", cfg)
