import pytest
import torch

from abstain.train import TrainConfig, _schedule


def _rates(cfg: TrainConfig, steps: int = 20) -> list[float]:
    opt = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=cfg.lr)
    sched = _schedule(opt, steps, cfg)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def test_constant_schedule_keeps_the_rate_onecycle_warms_up_and_anneals():
    assert _rates(TrainConfig(lr=3e-3, schedule="constant")) == [3e-3] * 20
    one = _rates(TrainConfig(lr=3e-3))
    peak = max(one)
    assert peak == pytest.approx(3e-3, rel=0.05)
    assert one.index(peak) == 2                      # pct_start 0.15 of 20 steps, counted from 0
    assert one[:3] == sorted(one[:3]) and one[2:] == sorted(one[2:], reverse=True)
    assert one[0] < 0.1 * peak and one[-1] < 0.01 * peak


def test_unknown_schedule_is_a_value_error():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'cosine'"):
        _rates(TrainConfig(schedule="cosine"))


def test_random_distort_changes_about_the_chosen_share_and_keeps_digits(mnist):
    from abstain.tensors import to_tensor
    from abstain.train import random_distort
    x = to_tensor(mnist.x_train[:2000])
    assert random_distort(x, 0.0, torch.Generator().manual_seed(0)) is x
    out = random_distort(x, 0.1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.22 < changed.float().mean() < 0.32             # 1 - 0.9^3 = 0.271 of the images
    assert torch.equal(out, random_distort(x, 0.1, torch.Generator().manual_seed(0)))
    every = random_distort(x, 1.0, torch.Generator().manual_seed(1))
    ratio = every.flatten(1).sum(1) / x.flatten(1).sum(1)    # ink: zoom 0.9-1.1x scales it by 0.81-1.21
    assert 0.65 < ratio.min() and ratio.max() < 1.45           # (the elastic warp and bilinear resampling add some)
    moved = (every - x).abs().flatten(1).mean(1)
    assert (moved > 0.01).float().mean() > 0.95              # visibly changed, yet the same digit:
    assert torch.nn.functional.cosine_similarity(every.flatten(1), x.flatten(1)).mean() > 0.8


def test_max_val_judges_each_epoch_on_the_first_validation_images(mnist):
    from abstain.models.classifier import CNN
    from abstain.train import accuracy, train_classifier
    torch.manual_seed(0)
    model = CNN()
    r = train_classifier(model, mnist.x_train, mnist.y_train, mnist.x_val, mnist.y_val,
                         TrainConfig(epochs=1, max_train=500, max_val=300))
    assert r["val_accuracy"] == accuracy(model, mnist.x_val[:300], mnist.y_val[:300])
    assert r["val_accuracy"] != accuracy(model, mnist.x_val, mnist.y_val)   # not the whole split


@pytest.mark.parametrize("field", ["max_train", "max_val"])
def test_max_train_and_max_val_must_be_positive(field):
    with pytest.raises(ValueError, match=f"{field} must be at least 1"):
        TrainConfig(**{field: 0})


@pytest.mark.parametrize("fields, message", [
    ({"epochs": 0}, "epochs must be at least 1"), ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"patience": 0}, "patience must be at least 1"), ({"lr": 0.0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"), ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
    ({"shift": -1}, "shift must be >= 0"), ({"distort": 1.5}, "distort is a probability"),
    ({"seed": -1}, "seed must be >= 0")])
def test_settings_no_training_can_use_fail_at_construction(fields, message):
    from abstain.errors import InputError
    with pytest.raises(InputError, match=message):
        TrainConfig(**fields)


def test_abs_config_rejects_a_negative_kl_weight_and_step_counts():
    from abstain.errors import InputError
    from abstain.models.abs import ABSConfig
    for fields in ({"beta": -1.0}, {"beta": float("nan")}, {"finetune_steps": -1}, {"scale_fit_images": -2}):
        with pytest.raises(InputError, match="ABS"):
            ABSConfig(**fields)
    assert ABSConfig(beta=0.0).beta == 0.0          # a plain autoencoder's loss is allowed
