"""ABS in a run: checkpoint round trip, the `abs` detector, `score --classifier abs`, `check --explain`."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from abstain.cli import main
from abstain.commands import _explain
from abstain.detectors import make_detector
from abstain.errors import InputError
from abstain.explain import explain_text, thumbnail
from abstain.run import load_run


def test_run_saves_and_reloads_abs(tiny_run):
    assert (tiny_run.path / "abs.safetensors").exists()
    loaded = load_run(tiny_run.path).models["abs"]
    for (k, a), (_, b) in zip(tiny_run.models["abs"].state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert tiny_run.info["abs"]["history"]


def test_abs_detector_is_minus_the_best_class_loss(tiny_run, mnist):
    x = mnist.x_test[:8]
    det = make_detector("abs", abs=tiny_run.models["abs"]).fit(mnist.x_train[:100])
    logits = tiny_run.models["abs"].with_mode("search")(torch.from_numpy(x).float().div(255)[:, None])
    np.testing.assert_allclose(det.score_samples(x), logits.max(1).values.double().numpy(), rtol=1e-5)
    fast = tiny_run.models["abs"].with_mode("fast")(torch.from_numpy(x).float().div(255)[:, None])
    assert (fast.max(1).values >= logits.max(1).values - 1e-6).all()    # steps only lower the best loss
    with pytest.raises(InputError, match="unknown ABS mode"):
        make_detector("abs", abs=tiny_run.models["abs"], mode="slowest").fit(x)


def test_score_classifier_abs_adds_class_and_confidence(tiny_run, mnist, tmp_path):
    x = mnist.x_test[:6]
    np.save(tmp_path / "x.npy", x)
    args = ["score", "--run", str(tiny_run.path), "--input", str(tmp_path / "x.npy"), "--json"]
    assert main([*args, str(tmp_path / "cnn.json")]) == 0
    assert main([*args, str(tmp_path / "abs.json"), "--classifier", "abs"]) == 0
    cnn = json.loads((tmp_path / "cnn.json").read_text())
    out = json.loads((tmp_path / "abs.json").read_text())
    assert "abs_class" not in cnn["images"][0]
    logits = tiny_run.models["abs"].with_mode("fast")(torch.from_numpy(x).float().div(255)[:, None])
    assert [im["abs_class"] for im in out["images"]] == logits.argmax(1).tolist()
    assert all(0.1 <= im["abs_confidence"] <= 1 for im in out["images"])
    assert [im["class"] for im in out["images"]] == [im["class"] for im in cnn["images"]]
    search = tiny_run.models["abs"].with_mode("search")(torch.from_numpy(x[:1]).float().div(255)[:, None])
    assert out["images"][0]["scores"]["abs"] == pytest.approx(float(search[0].max()), rel=1e-5)
    # --abs-mode checked classifies with the checked mode (the fast one, close calls solved again)
    assert main([*args, str(tmp_path / "checked.json"), "--classifier", "abs", "--abs-mode", "checked"]) == 0
    checked = json.loads((tmp_path / "checked.json").read_text())
    logits = tiny_run.models["abs"].with_mode("checked")(torch.from_numpy(x).float().div(255)[:, None])
    assert [im["abs_class"] for im in checked["images"]] == logits.argmax(1).tolist()


def test_check_explain_prints_and_draws_the_reconstructions(tiny_run, mnist, tmp_path, capsys):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"d{i}.png")
        Image.fromarray(mnist.x_test[i]).save(paths[-1])
    assert main(["check", "--run", str(tiny_run.path), *map(str, paths), "--explain",
                 "--json", str(tmp_path / "v.json")]) == 0
    text = capsys.readouterr().out
    assert text.count("l=") == 20 and "input" in text and "*" in text
    entries = json.loads((tmp_path / "v.json").read_text())
    losses = entries[0]["abs"]["losses"]
    assert len(losses) == 10 and entries[0]["abs"]["class"] == int(np.argmin(losses))
    assert entries[0]["abs"]["scaled"] is False and "al=" not in text      # tiny_run fits no class scales
    png = Image.open(tmp_path / "v.abs.png")
    assert png.size[0] > 11 * 56 and png.size[1] > 2 * 56
    assert main(["check", "--run", str(tiny_run.path), str(paths[0]), "--explain-png",
                 str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size[1] < png.size[1]


def test_explain_says_when_losses_carry_fitted_class_scales(tiny_run, mnist):
    run = load_run(tiny_run.path)
    images, plain, scaled = mnist.x_test[:2], [{}, {}], [{}, {}]
    _explain(run, images, plain, "faithful")          # every class refined: l_y does not depend on a_y
    a = torch.linspace(0.9, 1.1, 10)
    with torch.no_grad():
        run.require_abs().class_scale.copy_(a)
    _explain(run, images, scaled, "faithful")
    assert plain[0]["abs"]["scaled"] is False and scaled[0]["abs"]["scaled"] is True
    np.testing.assert_allclose(scaled[0]["abs"]["losses"], np.array(plain[0]["abs"]["losses"]) * a.numpy(),
                               rtol=1e-4)
    text = explain_text(images[0] / 255.0, np.zeros((10, 28, 28)), np.array(scaled[0]["abs"]["losses"]),
                        run.guard.class_names, symbol="al")
    assert text.count(" al=") == 10


def test_thumbnail_pools_to_14_by_14():
    img = np.zeros((28, 28))
    img[:2, :2] = 1.0
    rows = thumbnail(img)
    assert len(rows) == 14 and all(len(r) == 14 for r in rows)
    assert rows[0][0] == "@" and rows[0][1] == " " and rows[13] == " " * 14
