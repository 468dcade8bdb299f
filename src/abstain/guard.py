"""Guard: a classifier, its detectors and one calibrated threshold -> accept / abstain."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from scipy.special import softmax

from .atomic import atomic_path, write_json
from .detectors import DETECTORS, Detector, make_detector
from .errors import InputError, NotFittedError, RunError
from .metrics import threshold_at
from .models.classifier import CNN
from .tensors import as_images
from .views import compute_views


@dataclass
class Verdict:
    """What the guard says about one image."""

    label: int
    class_name: str
    confidence: float          # max softmax of the classifier
    verdict: str               # "accept" or "abstain"
    reason: str
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class"] = d.pop("label")
        return d


class Guard:
    """Accept an image when the chosen detector scores it at or above `threshold_`.

    The threshold is calibrated on held-out in-distribution images so that a fraction
    `accept` of them is accepted (default 95%).
    """

    def __init__(self, classifier: CNN, detectors: dict[str, Detector], detector: str,
                 accept: float = 0.95, class_names: list[str] | None = None):
        if detector not in detectors:
            raise InputError(f"guard detector {detector!r} is not among {sorted(detectors)}")
        for name, det in detectors.items():
            if det.input == "scores":
                bad = [p for p in det.parts if p not in detectors or detectors[p].input == "scores"]
                if bad:
                    raise InputError(f"detector {name!r}: parts {bad} are not detectors of this guard "
                                     f"(or combine others themselves)")
        self.classifier = classifier
        self.detectors = detectors
        self.detector = detector
        self.accept = accept
        self.class_names = class_names or [str(i) for i in range(classifier.config.num_classes)]

    def scores(self, images, names=None, views=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every (or the named) detector's scores and the classifier's logits, one forward pass
        (none when `views` of these images were already computed). Combinations (input
        "scores") are computed from their parts' scores, each part scored once."""
        images = as_images(images)
        views = compute_views(self.classifier, images) if views is None else views
        names = list(self.detectors) if names is None else list(names)
        combined = [n for n in names if self.detectors[n].input == "scores"]
        base = list(dict.fromkeys([n for n in names if n not in combined] +
                                  [p for n in combined for p in self.detectors[n].parts]))
        out = {n: np.asarray(self.detectors[n].score_samples(views[self.detectors[n].input]), np.float64)
               for n in base}
        for n in combined:
            out[n] = np.asarray(self.detectors[n].score_samples(self.part_scores(n, out)), np.float64)
        return {n: out[n] for n in names}, views["logits"]

    def part_scores(self, name: str, scores: dict[str, np.ndarray]) -> np.ndarray:
        """The "scores" view of combination `name`: its parts' scores as (N, parts) columns."""
        return np.column_stack([scores[p] for p in self.detectors[name].parts])

    def calibrate(self, images, views=None) -> "Guard":
        """On validation `images`: fit the combinations (input "scores") on their parts' scores,
        then set the threshold that accepts the share `accept`; every detector scored once."""
        combined = {n: d for n, d in self.detectors.items() if d.input == "scores"}
        parts = [p for d in combined.values() for p in d.parts]
        names = list(dict.fromkeys(parts + ([] if self.detector in combined else [self.detector])))
        s, _ = self.scores(images, names, views)
        for n, det in combined.items():
            det.fit(self.part_scores(n, s))
        if self.detector in combined:
            s[self.detector] = combined[self.detector].score_samples(self.part_scores(self.detector, s))
        self.threshold_ = threshold_at(s[self.detector], self.accept)
        return self

    def decide(self, primary_scores: np.ndarray) -> np.ndarray:
        """Boolean accept mask for scores of the guard's detector."""
        if not hasattr(self, "threshold_"):
            raise NotFittedError("guard is not calibrated; call calibrate() on validation images")
        return np.asarray(primary_scores) >= self.threshold_

    def check(self, images) -> list[Verdict]:
        scores, logits = self.scores(images)
        probs = softmax(logits.astype(np.float64), axis=1)
        ok = self.decide(scores[self.detector])
        det = self.detectors[self.detector]
        flagged = det.flagged(self.part_scores(self.detector, scores), self.threshold_) \
            if hasattr(det, "flagged") else None          # a combination: which parts flagged
        out = []
        for i in range(len(probs)):
            s = scores[self.detector][i]
            rel = "at or above" if ok[i] else "below"
            reason = (f"{self.detector} score {s:.4g} {rel} threshold {self.threshold_:.4g} "
                      f"(accepts {self.accept:.0%} of validation images)")
            if flagged is not None and not ok[i]:
                reason += "; flagged by " + ", ".join(p for p, f in zip(det.parts, flagged[i]) if f)
            label = int(probs[i].argmax())
            out.append(Verdict(label, self.class_names[label], float(probs[i].max()),
                               "accept" if ok[i] else "abstain", reason,
                               {n: float(v[i]) for n, v in scores.items()}))
        return out

    # -- persistence: the classifier and the models are saved by the run; this is the rest --
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        arrays, spec = {}, {}
        for name, det in self.detectors.items():
            params = {k: v for k, v in det.get_params().items() if k not in det.model_params}
            learned = det.learned()
            spec[name] = {"detector": det.name, "params": params, "learned": sorted(learned),
                          "scalars": sorted(k for k, v in learned.items() if v.ndim == 0)}
            arrays.update({f"{name}.{k}": np.ascontiguousarray(np.atleast_1d(v)) for k, v in learned.items()})
        with atomic_path(folder / "detectors.safetensors") as tmp:
            save_file(arrays, str(tmp))
        write_json(folder / "guard.json", {"detector": self.detector, "accept": self.accept,
                                           "threshold": getattr(self, "threshold_", None),
                                           "class_names": self.class_names, "detectors": spec})

    @classmethod
    def load(cls, folder: str | Path, classifier: CNN, models: dict) -> "Guard":
        folder = Path(folder)
        try:
            spec = json.loads((folder / "guard.json").read_text())
            arrays = load_file(str(folder / "detectors.safetensors"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise RunError(f"{folder}: guard files missing or corrupt ({exc}); refit the run") from exc
        detectors = {}
        for name, d in spec["detectors"].items():
            kind = d.get("detector", name)
            if kind not in DETECTORS:
                raise RunError(f"{folder}: detector {kind!r} unknown to this version; refit the run")
            det = make_detector(kind, **d["params"], **{m: models[m] for m in DETECTORS[kind].model_params})
            for key in d["learned"]:
                value = arrays[f"{name}.{key}"]
                setattr(det, key, value.item() if key in d["scalars"] else value)
            det._restore()
            detectors[name] = det
        guard = cls(classifier, detectors, spec["detector"], spec["accept"], spec["class_names"])
        if spec["threshold"] is not None:
            guard.threshold_ = float(spec["threshold"])
        return guard
