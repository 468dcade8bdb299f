"""Time `make demo` from a fresh clone (install included), then again with the run cached.

Usage: python bench/demo_time.py [--keep]
Clones this repository (HEAD) into a temporary folder, runs `make demo` there with an empty
$ABSTAIN_HOME (the dataset cache is rebuilt from the installed sources), then runs it a second
time. Prints the two wall times and the fresh run's stages (`fresh_stages`); writes
bench/results/demo_time.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, env: dict, log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return elapsed


STAGES = re.compile(r"demo took (\d+) s \(fit (\d+) s, evaluation (\d+) s, report (\d+) s\)")


def fresh_stages(log: Path, run: Path, total: float) -> dict:
    """Where the fresh run's time went: the demo's own stage line (fit, evaluation, report), each
    model's training seconds from its checkpoint's JSON (and, when the models trained side by side,
    the training's wall time from run.json), and the rest of the fit (data, detectors, guard)
    and of the wall time (install, start-up) by difference."""
    found = STAGES.findall(log.read_text())
    if not found:
        sys.exit(f"no stage line ('demo took ... (fit ...)') in {log}")
    demo, fit, evaluation, report = map(int, found[-1])
    training = {}
    for f in sorted(run.glob("*.json")):       # each checkpoint's JSON (classifier.json, ...) holds its training
        seconds = json.loads(f.read_text()).get("training", {}).get("seconds")
        if seconds is not None:
            training[f.stem] = seconds
    per_model = {f"train_{m}": round(v) for m, v in training.items()}
    pool = json.loads((run / "run.json").read_text()).get("summary", {}).get("training")
    side_by_side = pool is not None and pool["workers"] > 1
    # one after another, the models' seconds are stages that add up; side by side
    # (abstain.train_pool) the training's wall time is the stage and each model's own seconds
    # (in its worker, overlapping the others) are listed apart
    trained = pool["seconds"] if side_by_side else sum(training.values())
    stages = {"install_and_startup": round(total - demo),
              **({"train_models": round(trained)} if side_by_side else per_model),
              "fit_rest": round(fit - trained), "evaluation": evaluation, "report": report}
    if side_by_side:
        stages["training_side_by_side"] = {"workers": pool["workers"], "threads": pool["threads"], **per_model}
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="abstain-bench-"))
    clone = work / "abstain"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # the commit timed is the clone's, read now: the checkout may move on while the demo runs
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                            text=True).stdout.strip()
    env = {**os.environ, "ABSTAIN_HOME": str(work / "home"), "ABSTAIN_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    first = timed(["make", "demo"], clone, env, work / "first.log")
    stages = fresh_stages(work / "first.log", work / "home" / "runs" / "mnist", first)
    second = timed(["make", "demo"], clone, env, work / "second.log")
    result = {"fresh_clone_seconds": round(first, 1), "cached_seconds": round(second, 1),
              "budget_fresh_seconds": 600, "budget_cached_seconds": 60, "fresh_stages_seconds": stages,
              "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
              "commit": commit}
    tail = (work / "first.log").read_text().splitlines()[-40:]
    print("\n".join(tail))
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "demo_time.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
