"""The 1-vs-7 experiment, the shapes probe, the CLI and the standalone report on the tiny run."""
from __future__ import annotations

import base64
import io
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from abstain.cli import main
from abstain.probes.one_vs_seven import BAR_ROWS, SHIFTS, run_one_vs_seven, special_images
from abstain.probes.shapes import make_shapes
from abstain.report.probes import build_probe_report


def test_one_vs_seven_reaches_99_and_reports_every_image(probe_result, mnist, tiny_run):
    r = probe_result["one_vs_seven"]
    assert r["test_accuracy"] >= 0.99
    assert r["test_1s_7s"]["abstain"] < 0.15                  # calibrated on validation 1s and 7s
    names, _ = special_images(mnist)
    rows = {row["name"]: row for row in r["images"]}
    assert list(rows) == names
    for row in rows.values():
        assert row["p1"] + row["p7"] == pytest.approx(1.0)
        assert row["verdict"] in ("accept", "abstain") and row["class"] == ("7" if row["p7"] > 0.5 else "1")
    assert rows["1 (drawn)"]["p1"] > 0.5 and rows["7 (drawn)"]["p7"] > 0.5
    assert rows["test 1 shifted +0 px"]["p1"] > 0.9
    assert r["seed"]["top bar"] == {"class": "7", "probability": 0.9997}
    assert [s["dx"] for s in r["shifts"]] == list(SHIFTS)
    assert [b["row"] for b in r["bar_rows"]] == list(BAR_ROWS)
    assert all(0 <= b["p7"] <= 1 and b["verdict"] in ("accept", "abstain") for b in r["bar_rows"])
    assert r["guard"]["detector"] == "union"      # the tiny run's guard kind, fitted on 1s and 7s
    # its union takes the run's parts and shares, and the JSON says which
    run_union = tiny_run.guard.detectors["union"]
    assert r["guard"]["union"] == {"parts": list(run_union.parts), "shares": list(run_union.shares)}
    # the guard fitted on 1s and 7s abstains on most other digits more than on 1s and 7s
    assert r["other_test_digits"]["abstain"] > r["test_1s_7s"]["abstain"] + 0.3


def test_one_vs_seven_is_cached_and_skipped_off_mnist(tiny_run, probe_result, pair_config):
    folder = tiny_run.path / "probes" / "one_vs_seven"
    stamp = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    again = run_one_vs_seven(tiny_run, pair_config)
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == stamp     # nothing retrained
    assert again["images"] == probe_result["one_vs_seven"]["images"]
    fashion = SimpleNamespace(config=SimpleNamespace(dataset="fashion_mnist"))
    assert "fashion_mnist" in run_one_vs_seven(fashion)["skipped"]


def test_pair_checkpoint_from_before_a_new_train_field_is_reused(tiny_run, probe_result, pair_config):
    """A 1-vs-7 net saved before TrainConfig grew `schedule` (its default unchanged) is not retrained."""
    from safetensors.torch import load_file, save_file

    from abstain.checkpoint import read_meta
    path = tiny_run.path / "probes" / "one_vs_seven" / "classifier.safetensors"
    meta = read_meta(path)
    assert meta["train"].pop("schedule") == "onecycle"
    save_file(load_file(path), str(path), metadata={"abstain": json.dumps(meta)})
    stamp = path.stat().st_mtime_ns
    again = run_one_vs_seven(tiny_run, pair_config)
    assert path.stat().st_mtime_ns == stamp
    assert again["images"] == probe_result["one_vs_seven"]["images"]


def test_pair_guard_takes_the_run_union(tiny_run, probe_result, pair_config, tmp_path):
    """The 1-vs-7 guard's `union` gets the run's parts and shares (`abstain fit --union`): with
    0.999 : 0.001, mahalanobis_layers turns away almost none of the validation 1s and 7s; parts
    the pair guard lacks fall back to the default union."""
    import shutil

    import numpy as np

    from abstain.probes.one_vs_seven import fit_pair, pair_split
    folder = tmp_path / "pair"
    shutil.copytree(tiny_run.path / "probes" / "one_vs_seven", folder)
    xv, _ = pair_split(tiny_run.dataset, "val")
    flagged = {}
    parts = ["msp", "mahalanobis_layers"]
    for shares in ((0.8, 0.2), (0.999, 0.001)):
        _, guard, _ = fit_pair(folder, tiny_run.dataset, "union", 0.95, pair_config,
                               union={"parts": parts, "shares": shares})
        union = guard.detectors["union"]
        assert list(union.parts) == parts and list(union.shares) == list(shares)
        assert json.loads((folder / "pair.json").read_text())["union"] == {"parts": parts, "shares": list(shares)}
        s, _ = guard.scores(xv, list(union.parts))
        flagged[shares] = union.flagged(np.column_stack([s[p] for p in union.parts]), guard.threshold_).mean(0)
    assert flagged[(0.8, 0.2)][1] >= 0.005 and flagged[(0.999, 0.001)][1] <= 0.001
    _, guard, _ = fit_pair(folder, tiny_run.dataset, "union", 0.95, pair_config,
                           union={"parts": ["msp", "complexity"], "shares": [0.8, 0.2]})
    assert list(guard.detectors["union"].parts) == parts and list(guard.detectors["union"].shares) == [0.8, 0.2]


def test_shapes_probe(probe_result, tiny_run):
    names, images = make_shapes()
    assert [s["name"] for s in probe_result["shapes"]] == names
    verdicts = tiny_run.guard.check(images)
    assert [s["verdict"] for s in probe_result["shapes"]] == [v.verdict for v in verdicts]
    assert sum(s["verdict"] == "abstain" for s in probe_result["shapes"]) >= len(names) // 2


def test_standalone_report(probe_result, tmp_path):
    path = build_probe_report(probe_result, tmp_path / "probes.html")
    text = path.read_text(encoding="utf-8")
    assert '<section id="probes">' in text and "1-vs-7" in text and "overconfidence" in text
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(pngs) >= 6
    for data in pngs:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 50
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_probe_json_and_summary(tiny_run, probe_result, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert main(["probe", "--run", str(tiny_run.path), "--n", "40", "--sweeps", "rotate",
                 "--epochs", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top bar" in text and "overconf" in text and "rotate" in text
    r = json.loads(out.read_text())
    assert set(r) >= {"run", "dataset", "guard", "settings", "one_vs_seven", "sweeps", "shapes"}
    assert r["settings"]["n"] == 40 and r["settings"]["seed"] == 0 and list(r["sweeps"]) == ["rotate"]
    sw = r["sweeps"]["rotate"]
    assert set(sw) >= {"unit", "identity", "steps", "overconfidence", "correlation"}
    assert set(sw["steps"][0]) >= {"value", "accuracy", "confidence", "abstain", "scores"}
    assert r["one_vs_seven"]["images"] == probe_result["one_vs_seven"]["images"]   # the cached 1-vs-7 net
    assert {"name", "class", "confidence", "verdict"} <= set(r["shapes"][0])


@pytest.mark.parametrize("args, message", [
    (["--run", "/nonexistent/run"], "not a fitted run"),
    (["--run", "RUN", "--sweeps", "wobble"], "unknown sweep"),
    (["--run", "RUN", "--n", "0"], "at least 1"),
])
def test_cli_probe_bad_input_is_one_line(tiny_run, args, message, capsys, tmp_path):
    args = [str(tiny_run.path) if a == "RUN" else a for a in args]
    assert main(["probe", *args, "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("abstain: error:") and message in err[0], err
    assert not (tmp_path / "x.json").exists()
    np.testing.assert_equal(len(list(tmp_path.iterdir())), 0)


def test_pair_limit_must_be_positive():
    from abstain.errors import InputError
    from abstain.probes import PairConfig
    with pytest.raises(InputError, match="at least 1"):
        PairConfig(limit=0)
