"""The foundation issue's numbers on the full-size MNIST run (slow: `make test-slow`).

Fits (or reuses) the demo's run in $ABSTAIN_HOME/runs/mnist with the default configuration,
evaluates it on the whole OOD suite, and checks the published bars.
"""
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full():
    from abstain.data.sources import abstain_home
    from abstain.evaluate import evaluate
    from abstain.run import RunConfig, fit_run
    run = fit_run(abstain_home() / "runs" / "mnist", RunConfig.for_dataset("mnist"))
    result, _ = evaluate(run)
    return {(r["detector"], r["ood"]): r for r in result["results"]}, result


def test_cnn_accuracy(full):
    assert full[1]["accuracy"] >= 0.993


@pytest.mark.parametrize("ood, bar", [("fashion_mnist", 0.99), ("letters", 0.99), ("gaussian_noise", 0.999),
                                      ("uniform_noise", 0.999), ("natural_crops", 0.99)])
def test_vae_gate_bars(full, ood, bar):
    rows, _ = full
    assert max(rows[("vae_elbo", ood)]["auroc"], rows[("vae_iwae", ood)]["auroc"]) >= bar
