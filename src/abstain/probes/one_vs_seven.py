"""The seed's 1-vs-7 experiment, with a guard beside the classifier.

A binary CNN is trained only on MNIST 1s (class 0) and 7s (class 1), without shift
augmentation (as in the seed), and a guard is fitted on the same 1s and 7s: the detectors of
GUARD_DETECTORS (`vae_elbo` with a small VAE trained on 1s and 7s; `mahalanobis_layers`, also
on recentred images; `union` of the default parts, or the run's `union` parts and shares where they
are among these), calibrated to accept the
run's share of validation 1s and 7s (with `classifier="abs"`, a two-class ABS is trained on the
same 1s and 7s and judged instead of the CNN, beside the same guard). Then both see images that
are neither: a lone top bar, a bar at the bottom, a dash, a 1 with a base stroke, and a test 1
shifted left and right.

The seed (Krishna 2016) got P(7) = 0.9997 for a lone horizontal stroke and P(1) = 0.9998 for
a 1 with a base stroke. Everything is cached in RUN/probes/one_vs_seven/ and reused when the
settings match; `pair.json` is written last and marks a complete cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import write_json
from ..checkpoint import config_to_dict, load_or_train
from ..detectors import make_detector
from ..errors import InputError, RunError
from ..guard import Guard
from ..models.abs import ABS, ABSConfig
from ..models.classifier import CNN, ClassifierConfig
from ..models.vae import ConvVAE, VAEConfig
from ..run import RunConfig
from ..train import TrainConfig, train_classifier, train_vae
from ..train_abs import train_abs
from ..views import compute_views
from .classifiers import abs_probs, probabilities
from .shapes import draw_lines
from .transforms import translate

log = logging.getLogger(__name__)

PAIR = (1, 7)                        # MNIST labels of class 0 and class 1
CLASS_NAMES = ["1", "7"]
GUARD_DETECTORS = ("mahalanobis_layers", "mahalanobis_layers_centred", "msp", "vae_elbo", "union")
SEED = {"top bar": ("7", 0.9997), "1 with base stroke": ("1", 0.9998)}     # the seed's numbers
SHIFTS = tuple(range(-6, 7))
VAE_CONFIG = VAEConfig(latent=8, channels=(16, 32), hidden=128)
SKIP_NOTE = ("skipped: the 1-vs-7 experiment needs MNIST digits and this run is on {dataset}; "
             "the sweeps and shapes below still use the run's own classifier")


@dataclass(frozen=True)
class PairConfig:
    epochs: int = 3               # classifier epochs (the seed used 8; 99% comes after 1)
    vae_epochs: int = 3
    lr: float = 3e-3
    seed: int = 0
    #: judge at most this many images of each test set (the test 1s and 7s, the other digits,
    #: the 1s of the shift curve), the first ones; None: all. ABS as the judged classifier
    #: takes about 4 ms per image, so all ~24,000 of them take minutes
    limit: int | None = None

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise InputError(f"1-vs-7: limit must be at least 1 image, got {self.limit}")
        if self.epochs < 1 or self.vae_epochs < 1:
            raise InputError(f"1-vs-7: epochs must be at least 1, got {self.epochs} and {self.vae_epochs}")
        if not 0 < self.lr < float("inf"):
            raise InputError(f"1-vs-7: lr must be a positive number, got {self.lr}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")


def pair_split(data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The 1s and 7s of a split: images and labels 0 (for 1) / 1 (for 7)."""
    x, y = data.split(split)
    keep = np.isin(y, PAIR)
    return x[keep], (y[keep] == PAIR[1]).astype(np.int64)


TOP_BAR_Y = 8.5       # rows 8-9: where the mean MNIST training 7 has its bar (cols 7-21)
BASE_Y = 22.5         # the bottom of a typical MNIST 1
BAR_ROWS = tuple(range(4, 25))


def bar(y: float) -> np.ndarray:
    """A lone horizontal bar as wide as a 7's, centred on row `y`."""
    return draw_lines([(7, y, 21, y)])


def special_images(data) -> tuple[list[str], np.ndarray]:
    """The probe images: drawn 1 and 7, bars, a dash, a 1 with a base stroke, and the first
    test 1 shifted by each of SHIFTS pixels (negative = left)."""
    drawn = {
        "1 (drawn)": [(14, 5, 14, BASE_Y)],
        "7 (drawn)": [(7, TOP_BAR_Y, 21, TOP_BAR_Y), (21, TOP_BAR_Y, 13, 24)],
        "top bar": [(7, TOP_BAR_Y, 21, TOP_BAR_Y)],
        "bottom bar": [(7, BASE_Y, 21, BASE_Y)],
        "dash": [(10, 14, 18, 14)],
        "1 with base stroke": [(14, 5, 14, BASE_Y), (9, BASE_Y, 19, BASE_Y)],
    }
    names = list(drawn)
    images = [draw_lines(lines) for lines in drawn.values()]
    one = data.x_test[np.flatnonzero(data.y_test == PAIR[0])[0]]
    for dx in SHIFTS:
        names.append(f"test 1 shifted {dx:+d} px")
        images.append(translate(one[None], dx=dx)[0])
    return names, np.stack(images)


def _judged(guard: Guard, predict, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass of the guard (its detector's scores, the CNN's logits) and the judged
    classifier's probabilities (see :mod:`.classifiers`; None = the CNN, from those logits)."""
    scores, logits = guard.scores(images, [guard.detector])
    return scores[guard.detector], probabilities(predict, images, logits)


def bar_scan(guard: Guard, predict) -> list[dict]:
    """A lone bar at every row of BAR_ROWS: P(7) and the guard's verdict (no cherry-picked row)."""
    images = np.stack([bar(y) for y in BAR_ROWS])
    scores, probs = _judged(guard, predict, images)
    return [{"row": y, "p7": float(p[1]), "verdict": "accept" if ok else "abstain"}
            for y, p, ok in zip(BAR_ROWS, probs, guard.decide(scores))]


def _models_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in ("classifier.safetensors", "vae.safetensors"):
        h.update((folder / f).read_bytes())
    return h.hexdigest()[:16]


def _checkpoint(path: Path, cls, model_cfg, train_cfg: TrainConfig, train) -> tuple:
    """Load the module at `path` if it was trained with these configs; else train and save it."""
    return load_or_train(path, cls, model_cfg, {"train": train_cfg}, train, want={"pair": list(PAIR)},
                         meta={"class_names": CLASS_NAMES})


def _fit_guard(classifier: CNN, vae: ConvVAE, data, detector: str, accept: float, union: dict) -> Guard:
    x, y = pair_split(data, "train")
    xv, _ = pair_split(data, "val")
    views = compute_views(classifier, x)
    instances = RunConfig().instances()          # the Mahalanobis parts as a run defines them

    def layers(name):
        kind, params = instances[name]
        return make_detector(kind, classifier=classifier, **params).fit(views["layers"], y)
    dets = {"mahalanobis_layers": layers("mahalanobis_layers"),
            "mahalanobis_layers_centred": layers("mahalanobis_layers_centred"),
            "msp": make_detector("msp").fit(views["logits"]),
            "vae_elbo": make_detector("vae_elbo", vae=vae).fit(x),
            "union": make_detector("union", parts=tuple(union["parts"]), shares=tuple(union["shares"]))}
    return Guard(classifier, dets, detector, accept, CLASS_NAMES).calibrate(xv)


def pair_union(union: dict | None) -> dict:
    """The parts and shares the pair guard's `union` takes (see fit_pair)."""
    default, usable = make_detector("union"), [d for d in GUARD_DETECTORS if d != "union"]
    if union is not None and not set(union["parts"]) <= set(usable):
        log.warning("1-vs-7 guard: union parts %s are not all among %s; using the default union",
                    list(union["parts"]), usable)
        union = None
    parts, shares = (default.parts, default.shares) if union is None else (union["parts"], union["shares"])
    return {"parts": list(parts), "shares": [float(s) for s in shares]}


def fit_pair(folder: Path, data, detector: str, accept: float, cfg: PairConfig = PairConfig(),
             progress: bool = False, union: dict | None = None) -> tuple[CNN, Guard, dict]:
    """Train (or reuse) the 1-vs-7 classifier, its VAE and its guard in `folder`. `union`: the
    parts and shares of its `union` ({"parts": [...], "shares": [...]}, e.g. the run's); the
    default union when None or when a part is not among the pair guard's detectors."""
    union = pair_union(union)
    (x, y), (xv, yv) = pair_split(data, "train"), pair_split(data, "val")
    ccfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, shift=0, seed=cfg.seed)
    vcfg = TrainConfig(epochs=cfg.vae_epochs, lr=2e-3, shift=0, seed=cfg.seed)
    clf, ctrain = _checkpoint(folder / "classifier.safetensors", CNN,
                              ClassifierConfig(num_classes=2), ccfg,
                              lambda m: train_classifier(m, x, y, xv, yv, ccfg, progress))
    vae, vtrain = _checkpoint(folder / "vae.safetensors", ConvVAE, VAE_CONFIG, vcfg,
                              lambda m: train_vae(m, x, xv, vcfg, progress))
    want = {"abstain_version": __version__, "detector": detector, "accept": accept,
            "union": union, "detectors": list(GUARD_DETECTORS), "models": _models_digest(folder)}
    marker = folder / "pair.json"
    guard = None
    if marker.exists():
        try:
            if {k: json.loads(marker.read_text()).get(k) for k in want} == want:
                guard = Guard.load(folder, clf, {"classifier": clf, "vae": vae})
        except (RunError, ValueError, KeyError, OSError) as exc:
            log.warning("refitting the 1-vs-7 guard: %s", exc)
    if guard is None:
        guard = _fit_guard(clf, vae, data, detector, accept, union)
        guard.save(folder)
        write_json(marker, want)
    return clf, guard, {"classifier": ctrain, "vae": vtrain}


def shift_curve(guard: Guard, ones: np.ndarray, predict) -> list[dict]:
    """For each shift of every given test 1: mean P(7), share called 7, share abstained on."""
    out = []
    for dx in SHIFTS:
        moved = translate(ones, dx=dx)
        scores, probs = _judged(guard, predict, moved)
        p7 = probs[:, 1]
        out.append({"dx": dx, "mean_p7": float(p7.mean()), "called_7": float(np.mean(p7 > 0.5)),
                    "abstain": float(1 - guard.decide(scores).mean())})
    return out


def _set_stats(guard: Guard, predict, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
    scores, probs = _judged(guard, predict, images)
    out = {"n": int(len(images)), "confidence": float(probs.max(1).mean()),
           "abstain": float(1 - guard.decide(scores).mean())}
    if labels is not None:
        out["accuracy"] = float(np.mean(probs.argmax(1) == labels))
    return out


def pair_abs(folder: Path, data, cfg: PairConfig, progress: bool = False) -> tuple[ABS, dict]:
    """A two-class ABS (one VAE for the 1s, one for the 7s), trained as the run's ABS is, cached."""
    (x, y), (xv, yv) = pair_split(data, "train"), pair_split(data, "val")
    tcfg = replace(RunConfig().abs_train, epochs=cfg.epochs, seed=cfg.seed)
    model, training = _checkpoint(folder / "abs.safetensors", ABS, ABSConfig(classes=2), tcfg,
                                  lambda m: train_abs(m, x, y, xv, yv, tcfg, progress))
    return model.eval(), training


def run_one_vs_seven(run, cfg: PairConfig = PairConfig(), progress: bool = False,
                     classifier: str = "cnn") -> dict:
    """The experiment on `run`'s dataset (MNIST only; otherwise a dict with a `skipped` note).
    `classifier`: "cnn" (the seed's binary CNN) or "abs" (a two-class ABS on the same 1s and 7s;
    the guard beside it is the same)."""
    if run.config.dataset != "mnist":
        return {"skipped": SKIP_NOTE.format(dataset=run.config.dataset)}
    data = run.dataset
    detector = run.guard.detector if run.guard.detector in GUARD_DETECTORS else "union"
    folder = Path(run.path) / "probes" / "one_vs_seven"
    union = run.guard.detectors.get("union")           # the pair's union takes the run's parts and shares
    clf, guard, training = fit_pair(folder, data, detector, run.guard.accept, cfg, progress,
                                    None if union is None else {"parts": union.parts, "shares": union.shares})
    predict = None                           # the pair CNN, through its guard's logits
    if classifier == "abs":
        model, training["abs"] = pair_abs(folder, data, cfg, progress)
        predict = abs_probs(model)
    xt, yt = pair_split(data, "test")
    xt, yt = xt[:cfg.limit], yt[:cfg.limit]
    others = data.x_test[~np.isin(data.y_test, PAIR)][:cfg.limit]
    names, images = special_images(data)
    verdicts = guard.check(images)              # every detector's score, for the table
    probs = _judged(guard, predict, images)[1]  # 19 images: a second small pass is cheaper than plumbing
    rows = [{"name": name, "p1": float(p[0]), "p7": float(p[1]), "class": CLASS_NAMES[int(p.argmax())],
             "verdict": v.verdict, "score": v.scores[guard.detector], "scores": v.scores}
            for name, p, v in zip(names, probs, verdicts)]
    test_stats = _set_stats(guard, predict, xt, yt)
    pair_guard_union = guard.detectors["union"]   # the run's parts and shares, or the default's
    return {"classes": CLASS_NAMES, "classifier": classifier, "config": config_to_dict(cfg), "training": training,
            "test_accuracy": test_stats["accuracy"],
            "guard": {"detector": guard.detector, "detectors": list(guard.detectors),
                      "threshold": guard.threshold_, "accept": guard.accept,
                      "union": {"parts": list(pair_guard_union.parts), "shares": list(pair_guard_union.shares)}},
            "test_1s_7s": test_stats,
            "other_test_digits": _set_stats(guard, predict, others),
            "images": rows, "seed": {k: {"class": c, "probability": p} for k, (c, p) in SEED.items()},
            "shifts": shift_curve(guard, xt[yt == 0], predict), "bar_rows": bar_scan(guard, predict)}
