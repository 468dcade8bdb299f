"""Discriminative finetuning of ABS's decoders (beyond the reference): what it changes, that it
lowers the class losses' cross-entropy on digits it did not see, and how it is asked for."""
import copy
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from abstain.cli import main
from abstain.models.abs import ABS, ABSConfig
from abstain.errors import InputError
from abstain.models.abs_modes import FINETUNE_MODES, MODES, Inference
from abstain.tensors import to_tensor
from abstain.train import TrainConfig
from abstain.train_abs import FINETUNE_INFERENCE, finetune_decoders, finetune_inference, train_abs

SMALL = Inference(prototypes=300, steps=5, lr=0.05, refine=3)


def cross_entropy(model: ABS, x, y) -> float:
    with torch.no_grad():
        losses = model.with_mode(SMALL).class_losses(to_tensor(x))
    return float(F.cross_entropy(-model.config.confidence_scale * losses, torch.from_numpy(y).long()))


@pytest.fixture(scope="module")
def tuned(tiny_run, mnist):
    before = tiny_run.models["abs"].eval()
    after = copy.deepcopy(before)
    after.config = replace(after.config, finetune_steps=12)
    info = finetune_decoders(after, mnist.x_train[:3000], mnist.y_train[:3000])
    return before, after, info


def test_runs_do_not_finetune_by_default(tiny_run):
    assert tiny_run.models["abs"].config.finetune_steps == 0


def test_only_the_decoder_weights_move(tuned):
    before, after, info = tuned
    assert info["steps"] == 12 and info["history"][-1]["step"] == 12
    assert all(p.requires_grad for p in after.parameters())        # encoders handed back trainable
    for old, new in zip(before.vaes, after.vaes):
        assert all(torch.equal(a, b) for a, b in zip(old.encoder.state_dict().values(),
                                                     new.encoder.state_dict().values()))
        moved = [not torch.equal(a, b) for a, b in zip(old.decoder.parameters(), new.decoder.parameters())]
        assert all(moved)
        for a, b in zip(old.decoder.buffers(), new.decoder.buffers()):     # BatchNorm statistics
            assert torch.equal(a, b)


def test_it_lowers_the_cross_entropy_on_held_out_digits(tuned, mnist):
    before, after, _ = tuned
    x, y = mnist.x_val[:400], mnist.y_val[:400]
    ce_before, ce_after = cross_entropy(before, x, y), cross_entropy(after, x, y)
    assert ce_after < 0.95 * ce_before, (ce_before, ce_after)


def test_the_config_chooses_the_finetuning_inference(tuned, mnist):
    before, after, info = tuned
    assert info["inference"] == asdict(FINETUNE_INFERENCE) and info["mode"] is None
    assert info["inference"] == asdict(finetune_inference(after.config))
    # `after` is the fixture's model finetuned with no mode named; here the same 12 steps and batches at
    # the fast mode's latents (finetune_decoders seeds torch and its batch generator itself, so a second
    # no-mode run would give `after` again: test_finetuning_inside_training_... checks such a repeat)
    fast = copy.deepcopy(before)
    fast.config = replace(fast.config, finetune_steps=12, finetune_mode="fast")
    got = finetune_decoders(fast, mnist.x_train[:3000], mnist.y_train[:3000])
    assert got["inference"] == asdict(finetune_inference(fast.config)) and got["mode"] == "fast"
    assert got["inference"] == asdict(MODES["fast"])       # 8,000 prototypes, 10 steps at rate 0.1
    # the same batches and steps, other latents: other weights, and neither is the model before
    assert not all(torch.equal(a, b) for a, b in zip(after.parameters(), fast.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before.parameters(), fast.parameters()))
    # and finetuning at the fast mode's latents still does its job on digits it did not see
    x, y = mnist.x_val[:400], mnist.y_val[:400]
    assert cross_entropy(fast, x, y) < 0.95 * cross_entropy(before, x, y)


def test_only_single_solve_modes_can_find_the_finetuning_latents():
    assert FINETUNE_MODES == ("fast", "faithful")
    for mode in ("checked", "search", "slowest"):
        with pytest.raises(InputError, match="finetune_mode"):
            ABSConfig(finetune_mode=mode)
    with pytest.raises(InputError, match="finetune_weight"):
        ABSConfig(finetune_weight=-1.0)


def test_solve_from_given_latents_matches_the_prototype_start(tiny_run, mnist):
    model = tiny_run.models["abs"].eval()
    x = to_tensor(mnist.x_test[:20]).flatten(1)
    protos = model.prototypes(FINETUNE_INFERENCE.prototypes)
    idx = model.nearest_prototypes(x, FINETUNE_INFERENCE.prototypes)
    torch.testing.assert_close(idx, model.nearest_prototypes(x, FINETUNE_INFERENCE.prototypes, protos))
    z, rec = model.solve(x, FINETUNE_INFERENCE)
    z2, rec2 = model.solve(x, FINETUNE_INFERENCE, start=protos[0][idx])
    torch.testing.assert_close(z2, z, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rec2, rec, rtol=1e-4, atol=1e-4)


def test_training_finetunes_when_the_config_asks(mnist):
    m = ABS(ABSConfig(finetune_steps=2))
    result = train_abs(m, mnist.x_train[:1000], mnist.y_train[:1000], mnist.x_val[:300], mnist.y_val[:300],
                       TrainConfig(epochs=1, batch_size=32, lr=3e-3))
    assert result["finetune"]["steps"] == 2 and result["finetune"]["history"][0]["step"] == 2
    with pytest.raises(ValueError, match="finetune_steps"):
        finetune_decoders(ABS(), mnist.x_train[:100], mnist.y_train[:100])


def test_finetuning_inside_training_equals_finetuning_the_trained_model(mnist):
    """`abstain fit --abs-finetune` trains and finetunes in one call of train_abs; the bench
    (bench/abs_speed.py) trains, saves, then finetunes the saved model: the same weights."""
    x, y, xv, yv = mnist.x_train[:600], mnist.y_train[:600], mnist.x_val[:200], mnist.y_val[:200]
    cfg = TrainConfig(epochs=1, batch_size=16, lr=3e-3, seed=1)
    tuned_cfg = ABSConfig(beta=0.25, finetune_steps=2, finetune_weight=10.0, finetune_mode="fast")
    torch.manual_seed(cfg.seed)
    one = ABS(tuned_cfg)
    train_abs(one, x, y, xv, yv, cfg)
    torch.manual_seed(cfg.seed)
    base = ABS(replace(tuned_cfg, finetune_steps=0))
    train_abs(base, x, y, xv, yv, cfg)
    two = ABS(tuned_cfg)
    two.load_state_dict(base.state_dict())
    info = finetune_decoders(two, x, y, cfg.seed)
    assert info["mode"] == "fast"
    for (k, a), b in zip(one.state_dict().items(), two.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("flags, named", [
    (["--abs-finetune", "-1"], "--abs-finetune"),
    (["--abs-finetune-weight", "-1", "--abs-finetune", "5"], "--abs-finetune-weight"),
    (["--abs-finetune-weight", "inf", "--abs-finetune", "5"], "--abs-finetune-weight"),
    (["--abs-finetune-weight", "10"], "--abs-finetune-weight"),         # no finetuning to weigh
    (["--abs-finetune-mode", "fast"], "--abs-finetune-mode"),
    (["--abs-patience", "0"], "--abs-patience"),
    (["--abs-seed", "-2"], "--abs-seed"),
])
def test_cli_refuses_bad_finetuning_and_recipe_options(tmp_path, capsys, flags, named):
    assert main(["fit", "--dataset", "mnist", "--run", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0], err
    assert not (tmp_path / "r").exists()
