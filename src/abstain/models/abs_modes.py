"""How ABS finds, for an image x and each class y, the latent z* that explains x best: the
``Inference`` settings and the named modes.

Inference for an image x and class y (``Inference``: prototypes, steps, lr):

1. prototypes: the most probable 90% of ``prototypes / 0.9`` draws from N(0, I), decoded once
   per class and cached (deterministic seed); the start z is the prototype with the lowest
   ||x - G_y(z)||^2 + 1/2 ||z||^2 (one matrix multiply);
2. ``steps`` Adam steps on z (learning rate ``lr``), projecting z back to norm <= ``max_norm``;
3. class loss l_y(x) = (||x - G_y(z*)||^2 + 1/2 ||z*||^2) / 784; logits = -a_y l_y.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Inference:
    """How the latent of each class is found: prototype search, then Adam steps. With
    `refine` = k, only the k classes whose best prototype explains x best take the steps (the
    others keep their prototype; their loss is an upper bound, and the winner is always among
    the refined ones); None refines all classes."""

    prototypes: int = 8000
    steps: int = 50
    lr: float = 0.05
    refine: int | None = None
    #: images whose two best logits (-a_y l_y) end within `check_margin` of each other are
    #: solved again from the start with the `check` inference (a slower one): only the ambiguous
    #: few pay for it. An image's answer still depends on that image alone
    check_margin: float = 0.0
    check: "Inference | None" = None

    def __post_init__(self):
        if isinstance(self.check, dict):       # from asdict(): rebuild the nested inference
            object.__setattr__(self, "check", Inference(**self.check))
        if (self.check is None) != (self.check_margin <= 0):
            raise ValueError("an Inference with a check needs check_margin > 0, and one with check_margin > 0 a check")


#: the reference's inference; also the checked mode's check
FAITHFUL = Inference(8000, 50, 0.05)

MODES = {
    "faithful": FAITHFUL,
    #: chosen on validation images from the curve of bench/abs_speed.py: 10 steps, only for the
    #: three classes whose best prototype explains x best, at Adam rate 0.1 (twice the faithful
    #: mode's; 0.05 before 2026-11-25: on validation images 0.1 was as accurate or more, and agreed
    #: better with the faithful mode, on each of the three models measured, docs/abs.md). On the
    #: 10-epoch model: 15.0x the faithful mode's images/s (16.8x in a second run of the same
    #: bench command), 0.10 points above its accuracy on
    #: 2,000 test images (bench/results/abs_speed_fastlr0.1.json)
    "fast": Inference(8000, 10, 0.1, 3),
    #: the fast mode, then its close calls (two best logits within 0.004) solved again by the
    #: faithful mode itself, all ten classes (2026-12-06; until then its 50 steps on only the 4
    #: classes whose best prototype fits best, which on the fast-finetuned seed-1 model missed the
    #: faithful answer on 0.5% of shifted validation images and capped the test set at 99.03%
    #: against the faithful 99.08%; docs/abs.md "The checked mode"). The margin was chosen without
    #: test labels by bench/abs_margin_select.py: on each of the recipe's models trained without
    #: the validation images, the smallest margin within 0.05 pt of the faithful mode on all 10,000
    #: of them; seeds 1, 2 and 0 chose 0.003, 0.002 and 0.004 (bench/results/abs_margin_select_seed*.json),
    #: and the margin is the smallest that passes on every seed measured: 0.004 since 2026-12-08
    #: (0.003 from 2026-12-07, when two seeds were measured; 0.002 before, from
    #: bench/abs_fast_select.py's 4-class check on shifted validation images). For clean
    #: classification. Attacks use "fast": near a decision boundary nearly every image is a close call
    "checked": Inference(8000, 10, 0.1, 3, check_margin=0.004, check=FAITHFUL),
    #: prototype search alone (no steps) over 2,000 prototypes: the best prototype's loss bounds
    #: each class loss from above; what the `abs` detector scores with (8,000 prototypes ran at
    #: 1,051 images/s in bench/results/abs_speed.json's curve, 1,000 at 8,694; 8,000 were a
    #: quarter of `abstain demo`'s evaluation)
    "search": Inference(2000, 0),
}


#: the modes that classify (the command line's `--abs-mode` choices for `score` and `check`);
#: "search" only bounds each class loss from above, for the `abs` detector
CLASSIFY_MODES = ("fast", "checked", "faithful")
#: the modes whose inference can find z* in the decoders' discriminative finetuning
#: (`abstain fit --abs-finetune-mode`; ABSConfig.finetune_mode): a single solve per image, no check
FINETUNE_MODES = ("fast", "faithful")
#: the modes an attack runs through (`abstain robustness --abs-mode`): "checked" solves close calls
#: again, and near a decision boundary nearly every image is a close call
ATTACK_MODES = ("fast", "faithful")


def resolve_mode(mode: str | Inference) -> Inference:
    """A mode name (a key of MODES) or an Inference -> the Inference."""
    if isinstance(mode, Inference):
        return mode
    if mode not in MODES:
        raise ValueError(f"unknown ABS mode {mode!r}; known: {', '.join(MODES)} or an Inference")
    return MODES[mode]
