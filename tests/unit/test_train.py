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
