import pytest
import torch

from seqbench import models
from tests.helpers import relative_error


def lm(**kwargs):
    torch.manual_seed(0)
    options = {"vocab_size": 40, "d_model": 16, "n_layers": 2, "mixer_options": {"heads": 4, "chunk_size": 8}}
    return models.LanguageModel(**{**options, **kwargs}).double()


def tokens(length=23):
    return torch.randint(0, 40, (2, length), generator=torch.Generator().manual_seed(2))


def decode(model, toks, prefix):
    logits, states = model.prefill(toks[:, :prefix]) if prefix else (None, model.init_state(toks.shape[0], dtype=torch.float64))
    outputs = [logits] if prefix else []
    for t in range(prefix, toks.shape[1]):
        step_logits, states = model.step(toks[:, t], states)
        outputs.append(step_logits.unsqueeze(1))
    return torch.cat(outputs, 1)


def test_all_modes_agree():
    model, toks = lm(), tokens()
    reference = model(toks, mode="recurrent")
    assert reference.shape == (2, 23, 40)
    for mode in ("scan", "attention", "chunked"):
        assert relative_error(model(toks, mode=mode), reference) < 1e-10


@pytest.mark.parametrize("prefix", [0, 1, 12])
def test_step_and_prefill_then_step_equal_forward(prefix):
    model, toks = lm(), tokens()
    assert relative_error(decode(model, toks, prefix), model(toks)) < 1e-10


def test_no_mlp_has_fewer_parameters():
    assert lm(mlp_ratio=0).num_parameters() < lm().num_parameters()


def test_parameter_count_and_state_size():
    model = lm()
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert model.state_size() == 2 * 2 * 4 * 4 * 4  # layers × complex × heads × dk × dv


def test_hybrid_mode_by_mixer_name():
    model = lm(mixer=["gateloop", "gateloop"], mixer_options={"gateloop": {"heads": 2}})
    assert model.mixer_names == ["gateloop", "gateloop"]
    toks = tokens()
    assert relative_error(model(toks, mode={"gateloop": "scan"}), model(toks)) < 1e-10


def test_bad_backbone_arguments():
    with pytest.raises(ValueError, match="one mixer name per layer: got 1 names for 2 layers"):
        lm(mixer=["gateloop"])
    with pytest.raises(ValueError, match="unknown mixer 'lstm'"):
        lm(mixer="lstm")
    with pytest.raises(ValueError, match="keyed by mixer name; 'heads' is not among"):
        lm(mixer=["gateloop", "gateloop"], mixer_options={"heads": 2})
    with pytest.raises(ValueError, match="unknown option"):
        lm(mixer_options={"head": 2})
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        lm(n_layers=0)
    with pytest.raises(ValueError, match=r"expected integer tokens of shape \(batch, length\)"):
        lm()(torch.randn(2, 5))
    with pytest.raises(ValueError, match="mode given for mixer"):
        lm()(tokens(), mode={"mamba": "scan"})


@pytest.mark.parametrize("mixer,options,exempt", [
    ("gateloop", {"state_transition": "fixed"}, {"transition_logits"}),
    ("gateloop", {}, {"to_transition.bias"}),
    ("mamba", {}, {"log_neg_a", "skip", "conv.bias", "dt_proj.bias"}),
    ("s5", {}, {"log_neg_lambda_real", "lambda_imag", "log_step", "skip", "gate.bias"}),
    ("retnet", {}, {"norm.weight", "norm.bias"}),
    ("retnet", {"norm": "rmsnorm"}, set()),
    ("linear_attention", {}, set()),
    ("softmax_attention", {}, set()),
])
def test_no_weight_decay_on_decay_parameters_norms_biases_and_embeddings(mixer, options, exempt):
    model = models.LanguageModel(vocab_size=11, d_model=16, n_layers=2, mixer=mixer, mixer_options=options, mlp_ratio=2)
    decayed, kept = model.weight_decay_split()
    assert set(kept) == {"embedding.weight", "norm.weight", *(f"blocks.{i}.{name}" for i in range(2) for name in (
        "mixer_norm.weight", "mlp_norm.weight", "mlp.0.bias", "mlp.2.bias", *(f"mixer.{p}" for p in exempt)))}
    assert set(decayed) | set(kept) == {name for name, _ in model.named_parameters()} and not set(decayed) & set(kept)
    assert "head.weight" in decayed and "blocks.0.mlp.0.weight" in decayed


def test_post_norm_blocks_normalise_after_the_residual_and_keep_the_parameters():
    pre, post = lm(), lm(norm="post")
    assert pre.num_parameters() == post.num_parameters()
    post.load_state_dict(pre.state_dict())
    toks = tokens()
    x = post.embedding(toks)
    for block in post.blocks:  # written out: x ← norm₁(x + mixer(x)); x ← norm₂(x + mlp(x))
        x = block.mixer_norm(x + block.mixer(x))
        x = block.mlp_norm(x + block.mlp(x))
    expected = post.head(post.norm(x))
    assert relative_error(post(toks), expected) < 1e-12
    assert relative_error(pre(toks), expected) > 1e-3
    for mode in ("scan", "attention", "chunked"):
        assert relative_error(post(toks, mode=mode), expected) < 1e-10
    assert relative_error(decode(post, toks, 5), expected) < 1e-10
    with pytest.raises(ValueError, match="unknown norm position 'middle'; valid: pre, post"):
        lm(norm="middle")


@pytest.mark.parametrize("backbone", ["lm", "autoencoder"])
def test_loss_on_the_scored_positions_only_equals_the_loss_with_ignored_targets(backbone):
    """Training computes logits at scored positions only; loss and every gradient match the full-logits
    loss with −100 targets, in float64."""
    from seqbench.models.autoencoder import AutoEncoder
    from seqbench.tasks import IGNORE

    model = lm() if backbone == "lm" else AutoEncoder(vocab_size=40, d_model=16, n_layers=2,
                                                        mixer_options={"heads": 4, "chunk_size": 8}).double()
    toks = tokens()
    targets = torch.roll(toks, -1, 1).masked_fill(torch.rand(toks.shape, generator=torch.Generator().manual_seed(3)) < 0.8, IGNORE)
    scored = targets != IGNORE
    assert 0 < int(scored.sum()) < toks.numel()
    full = torch.nn.functional.cross_entropy(model(toks).flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    full_grads = torch.autograd.grad(full, list(model.parameters()), allow_unused=True)
    logits = model(toks, scored=scored)
    assert logits.shape == (int(scored.sum()), 40)
    sparse = torch.nn.functional.cross_entropy(logits, targets[scored])
    sparse_grads = torch.autograd.grad(sparse, list(model.parameters()), allow_unused=True)
    assert relative_error(sparse, full) < 1e-12
    for a, b in zip(sparse_grads, full_grads):
        assert (a is None) == (b is None) and (a is None or relative_error(a, b) < 1e-10)
