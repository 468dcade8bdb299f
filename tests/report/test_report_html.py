"""The HTML report, built once from a tiny real run (about a minute on 2 CPU cores)."""
from __future__ import annotations

import base64
import html
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from abstain.data.ood import chicken_image
from abstain.errors import InputError
from abstain.evaluate import evaluate
from abstain.report import build_report
from abstain.report.data import class_probs
from abstain.report.html import fmt_pct

OOD = ["fashion_mnist", "gaussian_noise", "letters"]
PNG_RE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_run):
    run = tiny_run
    result, sets = evaluate(run, OOD, limit=1000)
    out_dir = tmp_path_factory.mktemp("report")
    path = build_report(run, result, sets, out_dir / "report.html")
    return run, result, sets, path, path.read_text(encoding="utf-8")


def _section(text: str, anchor: str) -> str:
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', text, re.S)
    assert m, f"section {anchor!r} missing"
    return m.group(1)


class _Checker(HTMLParser):
    """Records tags still open at the end and any external resource references."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.external = [], []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href") and value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> (open: {self.stack[-3:]})"
        self.stack.pop()


def test_file_is_a_complete_self_contained_html_document(built):
    _run, _result, _sets, path, text = built
    assert path.exists() and path.name == "report.html"
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    assert checker.external == []
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert path.stat().st_size < 3_000_000


def test_no_temporary_file_left_behind(built):
    path = built[3]
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]


def test_embedded_pngs_decode_with_sensible_sizes(built):
    _run, result, _sets, _path, text = built
    pngs = PNG_RE.findall(text)
    # chicken, softmax bars, strips, ROC, histograms, reconstructions, ABS + one per non-empty grid
    accepted = result["guard"]["accepted"]
    oods = [v for k, v in accepted.items() if k != "test"]
    grids = [accepted["test"] > 0, accepted["test"] < 1, max(oods) > 0, min(oods) < 1]
    assert len(pngs) == 7 + sum(grids)
    assert len(pngs) >= 8
    sizes = []
    for data in pngs:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.verify()
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            sizes.append(im.size)
    assert sizes[0] == (168, 168)        # the 28x28 chicken, enlarged 6 times
    for w, h in sizes:
        assert 100 <= w <= 2000 and 50 <= h <= 2500


def test_bad_input_leaves_the_existing_report_alone(built):
    run, result, sets, path, text = built
    with pytest.raises(InputError):
        build_report(run, result, sets[1:], path)
    assert path.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]


def test_report_is_kept_when_drawn_from_the_same_inputs(built, tmp_path, monkeypatch):
    import abstain.report as report
    run, result, sets, path, text = built
    key = report.report_key(run, result, sets)
    assert f'<meta name="abstain-report-key" content="{key}">' in text.split("</head>")[0]
    assert report.existing_key(path) == key and len(key) == 32
    copy = tmp_path / "report.html"
    copy.write_text(text, encoding="utf-8")
    before = copy.stat().st_mtime_ns

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")
    monkeypatch.setattr(report, "render", no_render)
    assert build_report(run, result, sets, copy) == copy        # same inputs: not drawn again
    assert copy.stat().st_mtime_ns == before and copy.read_text(encoding="utf-8") == text

    drawn = []
    monkeypatch.setattr(report, "render", lambda run, result, sets, key: drawn.append(key) or f"page {key}")
    changed = {**result, "accuracy": result["accuracy"] - 0.01}
    build_report(run, changed, sets, copy)                      # another result: drawn again
    scores = dict(sets[1].scores, msp=sets[1].scores["msp"] + 1e-9)
    moved = [sets[0], type(sets[1])(**{**vars(sets[1]), "scores": scores}), *sets[2:]]
    build_report(run, result, moved, copy)                      # one set's scores moved: again
    assert len(drawn) == 2 and len({key, *drawn}) == 3
    assert copy.read_text(encoding="utf-8") == f"page {drawn[1]}"
    assert report.existing_key(tmp_path / "missing.html") is None


def test_every_detector_and_ood_set_is_named(built):
    run, _result, _sets, _path, text = built
    results = _section(text, "results")
    for det in run.guard.detectors:
        assert f'<td class="name">{det}' in results
    for name in OOD:
        assert f"<th>{name}</th>" in results
    assert "(guard)" in results and 'class="best"' in results
    # the classifier's own mistakes are a failure source of their own, with their own table
    assert "<th>mistakes</th>" in results and "test-set mistakes" in results


def test_chicken_section_matches_the_classifier(built):
    run, _result, _sets, _path, text = built
    probs = class_probs(run.classifier, chicken_image()[None])[0]
    label = int(np.argmax(probs))
    chicken = _section(text, "chicken")
    assert f'<b id="chicken-class">{run.dataset.class_names[label]}</b>' in chicken
    assert f'<b id="chicken-confidence">{fmt_pct(probs[label])}</b>' in chicken
    verdict = run.guard.check(chicken_image()[None])[0]
    assert f'<span class="{verdict.verdict}">{verdict.verdict}</span>' in chicken
    assert verdict.class_name == run.dataset.class_names[label]


def test_confidence_table_prints_the_result_values(built):
    _run, result, _sets, _path, text = built
    table = _section(text, "confidence")
    rows = re.findall(r'<tr><td class="name">([^<]+)</td>(.*?)</tr>', table)
    printed = {name: re.findall(r"<td>([^<]+)</td>", cells) for name, cells in rows}
    assert set(printed) == {"test", *OOD}
    for name, shares in result["confidence_table"].items():
        assert printed[name] == [fmt_pct(shares[k]) for k in (">0.99", ">0.95", ">0.75")]
    assert "63.4 %" in table and "74.3 %" in table and "88.9 %" in table


def test_header_shows_accuracy_and_guard_acceptance(built):
    _run, result, _sets, _path, text = built
    summary = _section(text, "summary")
    assert fmt_pct(result["accuracy"], 2) in summary
    assert result["guard"]["detector"] in summary
    # the union guard names its parts and shares (the tiny run keeps Union's own default)
    assert result["guard"]["parts"] == {"msp": 0.8, "mahalanobis_layers": 0.2}
    assert "union (msp 0.8, mahalanobis_layers 0.2)" in summary
    for name, share in {**result["guard"]["accepted"], **result["guard"]["accepted_failures"]}.items():
        assert f'<td class="name">{name}</td>' in summary and fmt_pct(share) in summary
    assert "mistakes" in result["guard"]["accepted_failures"]
    assert "FPR95" in summary


def test_false_rejections_are_labelled(built):
    examples = _section(built[4], "examples")
    assert "false rejection" in examples


def test_abs_section_shows_each_class_model_and_its_verdict(built):
    import torch

    from abstain.detectors.abs import abs_logits
    from abstain.report.data import reconstruction_items
    run, _result, sets, _path, text = built
    sec = _section(text, "abs")
    ood = [s for s in sets if s.kind not in ("mistakes", "attack")]
    items = reconstruction_items(run, ood, chicken_image())
    (png,) = PNG_RE.findall(sec)
    with Image.open(io.BytesIO(base64.b64decode(png))) as im:     # input + 10 tiles of 84 px, 2 px gaps
        assert im.size == (11 * 86 + 4, len(items) * 86 + 2)
    model = run.models["abs"]
    images = np.stack([img for _, img in items])
    probs = model.confidence(torch.from_numpy(abs_logits(model, images, "fast"))).numpy()
    for (name, _), p in zip(items, probs):
        assert f"{html.escape(name)}: class {run.guard.class_names[int(p.argmax())]} at {p.max():.2f}" in sec
