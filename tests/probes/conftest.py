"""One probe result on the tiny run, shared by the probe tests (a short 1-vs-7 training)."""
from __future__ import annotations

import pytest

PROBE_N = 200                               # test digits per sweep step
PROBE_SWEEPS = ("translate_x", "rotate")


@pytest.fixture(scope="session")
def probe_settings():
    return {"n": PROBE_N, "sweeps": list(PROBE_SWEEPS)}


@pytest.fixture(scope="session")
def pair_config():
    from abstain.probes import PairConfig
    return PairConfig(epochs=1, vae_epochs=1)


@pytest.fixture(scope="session")
def probe_result(tiny_run, pair_config):
    from abstain.probes import run_probes
    return run_probes(tiny_run, n=PROBE_N, sweeps=list(PROBE_SWEEPS), pair=pair_config)
