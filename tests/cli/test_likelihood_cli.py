"""`abstain likelihood`: the trap and the fixes in one table, on small real runs."""
import json

import numpy as np

from abstain.cli import main
from abstain.likelihood import FASHION_COLUMNS, bits_per_dim, likelihood_table


def test_bits_per_dim():
    np.testing.assert_allclose(bits_per_dim(np.array([-784 * np.log(2), 0.0])), [1.0, 0.0])


def test_table_has_every_detector_and_column(tiny_fashion_run, tiny_run):
    result, sets = likelihood_table(tiny_fashion_run, tiny_run, limit=300)
    cols = [f"fashion_mnist->{c}" for c in FASHION_COLUMNS] + ["mnist->fashion_mnist"]
    assert result["columns"] == cols
    assert set(result["table"]) == set(tiny_fashion_run.guard.detectors)
    for det, row in result["table"].items():
        assert set(row) == set(cols), det
        assert all(0 <= m["auroc"] <= 1 and 0 <= m["fpr95"] <= 1 for m in row.values())
    # bits per dim are the IWAE scores of the two sets, converted
    b = result["bits_per_dim"]
    assert np.isclose(b["mnist_test"], bits_per_dim(sets["mnist"].scores["vae_iwae"]).mean())
    assert 0 < b["mnist_test"] < 8 and 0 < b["fashion_mnist_test"] < 8      # a real 8-bit likelihood
    # the trap: even a small FashionMNIST VAE rates MNIST digits as more likely
    assert b["mnist_test"] < b["fashion_mnist_test"]
    assert result["table"]["vae_iwae"]["fashion_mnist->mnist"]["auroc"] < 0.5
    assert set(result["typicality_batches"]["auroc"]) >= {"1", "10"}


def test_cli_writes_json_and_report(tiny_fashion_run, tiny_run, tmp_path, capsys):
    out, page = tmp_path / "lik.json", tmp_path / "lik.html"
    assert main(["likelihood", "--run", str(tiny_fashion_run.path), "--mnist-run", str(tiny_run.path),
                 "--limit", "300", "--json", str(out), "--report", str(page)]) == 0
    text = capsys.readouterr().out
    assert "llr" in text and "FM->M" in text
    data = json.loads(out.read_text())
    assert data["table"]["dose"]["mnist->fashion_mnist"]["auroc"] >= 0
    html = page.read_text()
    assert "<img" in html and "The trap" in html


def test_cli_rejects_an_mnist_run_as_the_fashion_run(tiny_run, capsys):
    assert main(["likelihood", "--run", str(tiny_run.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fashion_mnist run" in err
