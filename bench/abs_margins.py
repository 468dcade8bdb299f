"""What a larger check margin would buy the checked mode, on a model `abs_speed.py` measured.

Usage: python bench/abs_margins.py MODEL OPTIONS --measured JSON [--margins 0.002,0.003,...] [--out FILE]

MODEL OPTIONS are `bench/abs_speed.py`'s (the same model, from its cache). `--measured`: the JSON of
an `abs_speed.py --fast-mode checked --n-faithful 10000` run on that model, for its faithful
mistakes (`faithful_errors`), the checked mode's (`fast_all_test_errors`) and the faithful mode's
images per second; its checked mode may use any margin (0.002 before 2026-12-07), and `--margins`
must not go below it. This script runs the plain fast mode once over all 10,000 test images and keeps
each image's gap between its two best logits (the checked mode's criterion); then, for each
margin, it runs the checked mode with that margin over all 10,000 and reports the share of images
the check solved again, how many of the images where the measured checked and faithful modes
differ in correctness fall under the margin, the mistakes predicted from that (each such image
taking the faithful answer) and those measured, and the speed-up: this run's checked images per
second over the JSON's faithful ones, so run it on the machine that wrote the JSON, nothing else
running. A diagnostic on the test set: choosing the margin from it would tune on test images.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import abs_speed  # noqa: E402  (the model options and cache of the bench it reads)

from abstain.atomic import write_json  # noqa: E402
from abstain.data.datasets import load_dataset  # noqa: E402
from abstain.models.abs_modes import MODES  # noqa: E402

DEFAULT_MARGINS = "0.002,0.003,0.004,0.005,0.006,0.008,0.01,0.015,0.02"


def parse_margins(text: str) -> list[float]:
    """`--margins`' comma-separated logit gaps, in their order; anything else exits with one line."""
    try:
        margins = [float(m) for m in text.split(",")]
    except ValueError:
        sys.exit(f"--margins must be comma-separated numbers, got {text!r}")
    if any(not (m > 0 and math.isfinite(m)) for m in margins):
        sys.exit(f"--margins must be positive numbers, got {text!r}")
    return margins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    abs_speed.add_model_options(ap)
    ap.add_argument("--measured", type=Path, required=True,
                    help="abs_speed.py JSON of the checked mode on this model, all 10,000 test images")
    ap.add_argument("--margins", default=DEFAULT_MARGINS, help="comma-separated logit gaps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="JSON to write (default: print only)")
    args = ap.parse_args()
    margins = parse_margins(args.margins)
    try:
        measured = json.loads(args.measured.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"--measured: cannot read {args.measured}: {e}")
    need = ("fast_mode", "faithful", "faithful_errors", "fast_all_test_errors", "train_seed", "train_epochs")
    if any(k not in measured for k in need):
        sys.exit(f"--measured: {args.measured} is not an abs_speed.py JSON (needs {', '.join(need)})")
    if measured["fast_mode"] != "checked" or measured["faithful"]["n"] != 10000:
        sys.exit(f"--measured: {args.measured} must measure --fast-mode checked on --n-faithful 10000")
    # the JSON must describe the model the options name, and the checked mode this script runs
    differ = [f"{k} {measured.get(k)!r} (options: {v!r})"
              for k, v in abs_speed.model_record(args).items() if measured.get(k) != v]
    inference = measured.get("fast_same_images", {}).get("inference") or {}
    measured_margin = inference.get("check_margin")
    if measured_margin is None or inference != asdict(replace(MODES["checked"], check_margin=measured_margin)):
        differ.append("its checked mode is not abstain's (margin aside)")
    if differ:
        sys.exit(f"--measured: {args.measured} measured another model or mode: {'; '.join(differ)}")
    if min(margins) < measured_margin:
        # below the measured margin, images the JSON's run already solved again would go back to
        # the fast answer, which the JSON does not record: no prediction to check the run against
        sys.exit(f"--margins must be at least the measured checked mode's margin, {measured_margin:g}")
    base = measured["faithful"]["inference"]
    torch.set_num_threads(args.threads)
    model, _ = abs_speed.model_from_args(args)
    data = load_dataset("mnist")
    x, y = data.x_test, data.y_test
    fast = abs_speed.measure(model, MODES["fast"], x, y)
    gap = fast["gap"]
    faithful_err, checked_err = set(measured["faithful_errors"]), set(measured["fast_all_test_errors"])
    new, mended = sorted(checked_err - faithful_err), sorted(faithful_err - checked_err)
    faithful_rate = measured["faithful"]["images_per_second"]
    rows = []
    for m in tqdm(margins, desc="margins"):
        share = float((gap < m).mean())
        new_left = int(sum(gap[i] >= m for i in new))
        mended_left = int(sum(gap[i] >= m for i in mended))
        checked = abs_speed.measure(model, replace(MODES["checked"], check_margin=m), x, y)
        mistakes = int((checked["pred"] != y).sum())
        rows.append({"margin": m, "checked_share": share,
                     "new_mistakes_reached": len(new) - new_left, "mended_reached": len(mended) - mended_left,
                     "checked_mistakes_predicted": len(faithful_err) + new_left - mended_left,
                     "checked_mistakes": mistakes,
                     "minus_faithful_points": 100 * (len(faithful_err) - mistakes) / len(y),
                     "checked_images_per_second": checked["images_per_second"],
                     "speedup": checked["images_per_second"] / faithful_rate})
    res = {"command": "python bench/abs_margins.py " + " ".join(sys.argv[1:]),
           "faithful_inference": base, "faithful_mistakes": len(faithful_err),
           "measured_margin": measured_margin, "checked_mistakes_measured": len(checked_err),
           "new_mistakes_gaps": [round(float(gap[i]), 5) for i in new],
           "mended_gaps": [round(float(gap[i]), 5) for i in mended],
           "fast_images_per_second": fast["images_per_second"], "faithful_images_per_second": faithful_rate,
           "margins": rows}
    print(f"faithful {len(faithful_err)} mistakes, checked at {measured_margin:g} {len(checked_err)} "
          f"({len(new)} new, {len(mended)} mended); fast {fast['images_per_second']:.1f} img/s, faithful {faithful_rate:.1f}")
    print(" margin  share  new reached  mended reached  predicted  measured  vs faithful  speed-up")
    for r in rows:
        print(f" {r['margin']:<7g} {100 * r['checked_share']:5.2f}%  {r['new_mistakes_reached']:>6}/{len(new)}"
              f"  {r['mended_reached']:>9}/{len(mended)}  {r['checked_mistakes_predicted']:>9}"
              f"  {r['checked_mistakes']:>8}  {r['minus_faithful_points']:+9.2f} pt  {r['speedup']:7.1f}x")
    if args.out is not None:
        write_json(args.out, res)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
