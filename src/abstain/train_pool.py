"""Training a run's models side by side: worker processes, the machine's cores shared out.

A run trains up to four models (classifier, VAE, background VAE, ABS), each independent of
the others. Each worker trains one model, seeded as in one process, and writes its checkpoint
(atomically); the caller then loads the checkpoints. A worker trains a model bit for bit as
this process does with the same number of torch threads (tests/unit/test_train_pool.py checks
the classifier and the VAE); a model's numbers depend on that number in the last bits, which
training amplifies, so its summary records it.

On 2 cores side by side gains little: two single-threaded workers trained the four models
(one epoch each, demo configs) in 104.3 s against 116.0 s one after another with both threads,
1.11x (`python bench/train_pool_speed.py`, bench/results/train_pool_speed.json; each model ran
1.6-1.9x slower on one thread). So the automatic plan starts workers only where each keeps at
least `MIN_THREADS` threads (4 cores and more) and a 2-core machine trains as before, one
model after another with both threads; `--workers 2` asks for the side-by-side plan there.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch

from . import train as _train
from .errors import RunError

log = logging.getLogger(__name__)

#: longest training first (so the short ones fill in behind): the order of the seconds the
#: demo's fresh fit spent on them, 202 / 192 / 139 / 97 s (README, Results)
LONGEST_FIRST = ("classifier", "abs", "vae", "vae_background")


def available_cpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                  # not on Linux
        return os.cpu_count() or 1


#: threads each worker of the automatic plan keeps at least
MIN_THREADS = 2


def plan(models: int, workers: int | None = None, cpus: int | None = None) -> tuple[int, int]:
    """(worker processes, torch threads per worker) to train `models` models on `cpus` cores:
    the `workers` asked for, or by default as many as keep `MIN_THREADS` threads each; never
    more than models; the cores shared out evenly. One worker means: train in this process,
    with its own threads."""
    cpus = available_cpus() if cpus is None else cpus
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    n = max(1, min(models, cpus // MIN_THREADS if workers is None else workers))
    return n, max(1, cpus // n)


def order(names: list[str]) -> list[str]:
    """`names`, the longest training first (unknown ones last, in their order)."""
    rank = {n: i for i, n in enumerate(LONGEST_FIRST)}
    return sorted(names, key=lambda n: rank.get(n, len(rank)))


def _init(threads: int, slots, level: int) -> None:
    torch.set_num_threads(threads)
    _train.BAR_POSITION = slots.get()       # this worker's progress-bar line
    logging.basicConfig(level=level, format="%(message)s")


def _train_one(folder: Path, name: str, config, progress: bool) -> str:
    from .data.datasets import load_dataset
    from .run_models import model_checkpoint
    model_checkpoint(folder, name, config, load_dataset(config.dataset), progress)
    return name


def train_side_by_side(folder: Path, names: list[str], config, progress: bool, workers: int,
                       threads: int) -> None:
    """Train the models `names` of a run into `folder` in `workers` processes of `threads`
    torch threads each; returns when every checkpoint is written, or raises the first error."""
    ctx = multiprocessing.get_context("spawn")    # no fork: this process may hold torch threads
    slots = ctx.Queue()
    for i in range(workers):
        slots.put(i)
    level = logging.getLogger("abstain").getEffectiveLevel()
    log.info("training %s in %d processes of %d threads", ", ".join(names), workers, threads)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(threads, slots, level))
    try:
        futures = [pool.submit(_train_one, folder, name, config, progress) for name in order(names)]
        for done in as_completed(futures):
            log.info("trained %s", done.result())
    except BrokenProcessPool as exc:
        raise RunError(f"a training process died ({exc}); train in this process with --workers 1") from exc
    finally:        # on an error, models not started are dropped; those training finish first
        pool.shutdown(wait=True, cancel_futures=True)
