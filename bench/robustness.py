"""Robustness of the run's models (issue #5), with wall-clock and CPU time, as JSON.

Usage: python bench/robustness.py [--run DIR] [--models cnn,madry,abs,binary_abs] [--n 200]
Calls abstain.robustness.robustness with the default settings (the same as
`abstain robustness --run DIR --json bench/results/robustness.json`) and adds the host's thread
count, wall-clock and process CPU seconds, so timings taken on a busy machine can be judged.
Prints the table and writes bench/results/robustness.json.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from abstain.atomic import write_json
from abstain.robustness import RobustnessConfig, parse_models, robustness
from abstain.robustness.summary import format_robustness
from abstain.run import load_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(Path(os.environ.get("ABSTAIN_HOME", Path.home() / ".cache/abstain"))
                                         / "runs" / "mnist"))
    ap.add_argument("--models", default=None)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    run = load_run(args.run)
    names = parse_models(args.models, run)
    wall, cpu = time.perf_counter(), time.process_time()
    result, _ = robustness(run, names, replace(RobustnessConfig(), n=args.n),
                           progress=os.environ.get("ABSTAIN_NO_PROGRESS") != "1")
    result["settings"].update(seconds=round(time.perf_counter() - wall, 1),
                              cpu_seconds=round(time.process_time() - cpu, 1),
                              threads=torch.get_num_threads(), cpus=os.cpu_count(),
                              load_average=[round(v, 2) for v in os.getloadavg()],
                              command=f"python bench/robustness.py --run {args.run} --models {','.join(names)} "
                                      f"--n {args.n}")
    print(format_robustness(result))
    out = ROOT / "bench" / "results" / "robustness.json"
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
