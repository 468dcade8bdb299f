"""CLI: every command documented, bad input -> one line and exit 2, outputs in input order."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from abstain.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices


def test_every_command_has_help_and_is_in_readme():
    readme = (ROOT / "README.md").read_text()
    for name, p in _commands().items():
        assert p.description or p.format_help().strip(), name
        assert f"abstain {name}" in readme, f"`abstain {name}` missing from README"
        help_text = next(a.help for a in build_parser()._subparsers._group_actions[0]._choices_actions
                         if a.dest == name)
        assert help_text and len(help_text) > 10


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("abstain: error:"), err
    return err[0]


def test_score_writes_json_in_input_order(tiny_run, mnist, tmp_path, capsys):
    x = mnist.x_test[:5]
    np.save(tmp_path / "x.npy", x)
    assert main(["score", "--run", str(tiny_run.path), "--input", str(tmp_path / "x.npy"),
                 "--json", str(tmp_path / "out.json")]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["detectors"] == list(tiny_run.guard.detectors)
    expected = [v.label for v in tiny_run.guard.check(x)]
    assert [im["class"] for im in out["images"]] == expected
    # float 0-1 input gives the same answer as uint8 0-255
    np.save(tmp_path / "xf.npy", x.astype(np.float32) / 255)
    assert main(["score", "--run", str(tiny_run.path), "--input", str(tmp_path / "xf.npy"),
                 "--json", str(tmp_path / "outf.json")]) == 0
    outf = json.loads((tmp_path / "outf.json").read_text())
    assert [im["class"] for im in outf["images"]] == expected
    assert capsys.readouterr().out.splitlines()[-1].startswith("scored 5 images: ")
    # one image: the summary line says "image"
    np.save(tmp_path / "x1.npy", x[:1])
    assert main(["score", "--run", str(tiny_run.path), "--input", str(tmp_path / "x1.npy"),
                 "--json", str(tmp_path / "out1.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("scored 1 image: ")


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p, np.zeros((3, 27, 28), np.uint8)), "expected shape"),
    (lambda p: np.save(p, np.full((2, 28, 28), np.nan, np.float32)), "NaN"),
    (lambda p: np.save(p, np.zeros((0, 28, 28), np.uint8)), "no images"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "not a readable .npy"),
    (lambda p: p.write_bytes(b""), "not a readable .npy"),
    (lambda p: np.save(p, np.full((2, 28, 28), 3.0, np.float32)), "must lie in 0-1"),
    (lambda p: None, "no such file"),
])
def test_score_bad_input(tiny_run, tmp_path, capsys, make, message):
    path = tmp_path / "bad.npy"
    make(path)
    out = tmp_path / "out.json"
    assert main(["score", "--run", str(tiny_run.path), "--input", str(path), "--json", str(out)]) == 2
    assert message in _err_line(capsys)
    assert not out.exists() and not list(tmp_path.glob(".*tmp"))


def test_check_images(tiny_run, mnist, tmp_path, capsys):
    digit = 255 - mnist.x_test[0]                      # black ink on white paper, like a scan
    Image.fromarray(digit).resize((140, 140)).save(tmp_path / "seven.png")
    assert main(["check", "--run", str(tiny_run.path), str(tmp_path / "seven.png"),
                 "--json", str(tmp_path / "v.json")]) == 0
    line = capsys.readouterr().out.strip()
    assert re.search(r"seven\.png: (ACCEPT|ABSTAIN)\s+class 7", line), line
    assert json.loads((tmp_path / "v.json").read_text())[0]["class"] == 7


def test_check_corrupt_image(tiny_run, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"not a png")
    assert main(["check", "--run", str(tiny_run.path), str(tmp_path / "x.png")]) == 2
    _err_line(capsys)


def test_missing_run_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    assert main(["score", "--run", str(tmp_path / "none"), "--input", str(tmp_path / "x.npy"),
                 "--json", str(tmp_path / "o.json")]) == 2
    assert "abstain fit" in _err_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["robustness", "--json", "{dir}"], "--json {dir}: is a directory"),
    (["eval", "--report", "{dir}"], "--report {dir}: is a directory"),
    (["eval", "--json", "{file}/sub/e.json"], "{file} is a file, not a folder"),
    (["attack", "--attack", "pgd", "--eps", "0.1", "--input", "x.npy", "--labels", "y.npy", "--out", "{dir}"],
     "--out {dir}: is a directory")])
def test_an_output_no_write_can_succeed_at_fails_before_any_work(tmp_path, capsys, argv, message):
    # the run does not exist: these fail on the output path, before looking for it (a robustness
    # run once computed for its whole budget and then could not write its JSON to a folder)
    (tmp_path / "f").write_text("")
    paths = {"dir": str(tmp_path), "file": str(tmp_path / "f")}
    assert main([*(a.format(**paths) for a in argv), "--run", str(tmp_path / "none")]) == 2
    assert message.format(**paths) in _err_line(capsys)


def test_fit_into_a_file_or_force_on_a_foreign_folder_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("keep")
    assert main(["fit", "--run", str(tmp_path / "f")]) == 2
    assert "is a file, not a run folder" in _err_line(capsys)
    # --force deletes the run folder: never one holding what a run does not write (a home folder)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep")
    assert main(["fit", "--run", str(tmp_path / "mine"), "--force"]) == 2
    assert "refusing to delete" in _err_line(capsys)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep" and (tmp_path / "f").read_text() == "keep"


@pytest.mark.parametrize("union, message", [
    (["msp=0", "mahalanobis_layers=1"], "share of msp"), (["msp"], "PART=SHARE"), (["msp=x"], "PART=SHARE"),
    (["msp=1", "msp=2"], "twice"), (["cifar=1"], "'cifar' is not")])
def test_fit_bad_union_is_one_line_and_writes_nothing(tmp_path, capsys, union, message):
    assert main(["fit", "--run", str(tmp_path / "run"), "--union", *union]) == 2
    assert message in _err_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("n", ["0", "-5"])
def test_fit_max_train_below_one_is_one_line_and_writes_nothing(tmp_path, capsys, n):
    assert main(["fit", "--run", str(tmp_path / "run"), "--max-train", n]) == 2
    assert "--max-train must be at least 1" in _err_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "--epochs must be at least 1, got 0"),
    ("--vae-epochs", "-1", "--vae-epochs must be at least 1, got -1"),
    ("--background-epochs", "0", "--background-epochs must be at least 1"),
    ("--abs-epochs", "0", "--abs-epochs must be at least 1"),
    ("--seed", "-1", "--seed must be >= 0, got -1"),
    ("--abs-beta", "-0.5", "--abs-beta must be >= 0"),
    ("--abs-beta", "nan", "--abs-beta must be >= 0, got nan"),
    ("--background-weight-decay", "-1", "--background-weight-decay must be >= 0")])
def test_fit_numbers_no_training_can_use_are_one_line_and_write_nothing(tmp_path, capsys, option, value, message):
    # each of these once ended in a traceback (epochs 0: no best weights to load; a negative
    # seed: numpy's generator) or trained a model on a meaningless loss (negative beta / decay)
    assert main(["fit", "--run", str(tmp_path / "run"), option, value]) == 2
    assert message in _err_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["demo", "--attacks", "-1"], "--attacks is a number of test images"),
    (["purify", "--lr", "0"], "--lr must be positive"), (["purify", "--nu", "-1"], "--nu -1.0"),
    (["purify", "--attack-steps", "0"], "--attack-steps must be at least 1"),
    # a negative seed once reached numpy's generator (a traceback) after the run was loaded
    (["probe", "--seed", "-1"], "seed must be >= 0"),
    (["robustness", "--seed", "-1", "--json", "r.json"], "seed must be >= 0")])
def test_numbers_no_command_can_use_fail_before_any_work(tmp_path, capsys, argv, message):
    # the run folder does not exist: these fail on the number, before looking for it
    assert main([*argv, "--run", str(tmp_path / "run")]) == 2
    assert message in _err_line(capsys)
    assert not (tmp_path / "run").exists()


def test_eval_negative_attacks_is_one_line_before_scoring(tiny_run, tmp_path, capsys):
    # -1 once attacked every correctly classified test image but the last (a slice [:-1])
    assert main(["eval", "--run", str(tiny_run.path), "--attacks", "-1", "--json", str(tmp_path / "e.json")]) == 2
    assert "attacks is a number of test images" in _err_line(capsys)
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_workers_below_one_is_one_line_and_writes_nothing(tmp_path, capsys, command):
    assert main([command, "--run", str(tmp_path / "run"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in _err_line(capsys)
    assert not (tmp_path / "run").exists()


def test_eval_json_schema(tiny_run, tmp_path, capsys):
    assert main(["eval", "--run", str(tiny_run.path), "--ood", "uniform_noise,letters", "--limit", "500",
                 "--json", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert 0.9 < res["accuracy"] <= 1 and set(res["confidence_table"]) == {"test", "uniform_noise", "letters"}
    keys = {"detector", "ood", "auroc", "aupr_in", "aupr_out", "fpr95"}
    assert all(keys <= set(r) for r in res["results"])
    # two OOD sets plus the classifier's own mistakes, every detector
    assert len(res["results"]) == 3 * len(tiny_run.guard.detectors)
    assert {r["ood"] for r in res["results"]} == {"uniform_noise", "letters", "mistakes"}
    assert "AUROC" in capsys.readouterr().out


def test_eval_unknown_ood_set(tiny_run, capsys):
    assert main(["eval", "--run", str(tiny_run.path), "--ood", "cifar"]) == 2
    assert "known:" in _err_line(capsys)


def test_console_script_no_traceback(tmp_path):
    exe = Path(sys.executable).parent / "abstain"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "abstain.cli"]
    r = subprocess.run([*cmd, "score", "--run", str(tmp_path), "--input", str(tmp_path / "nope.npy"),
                        "--json", str(tmp_path / "o.json")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_attack_command_writes_adversarials(tiny_run, mnist, tmp_path, capsys):
    np.save(tmp_path / "x.npy", mnist.x_test[:20])
    np.save(tmp_path / "y.npy", mnist.y_test[:20])
    args = ["attack", "--run", str(tiny_run.path), "--attack", "pgd", "--eps", "0.3", "--steps", "10",
            "--input", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "a.npy")]
    assert main(args) == 0
    adv = np.load(tmp_path / "a.npy")
    assert adv.shape == (20, 28, 28) and adv.dtype == np.float32
    assert np.abs(adv - mnist.x_test[:20] / 255).max() <= 0.3 + 1e-6
    assert capsys.readouterr().out.startswith("pgd eps=0.3: 20 images, success rate ")
    np.save(tmp_path / "x1.npy", mnist.x_test[:1])
    np.save(tmp_path / "y1.npy", mnist.y_test[:1])
    one = [a.replace("x.npy", "x1.npy").replace("y.npy", "y1.npy") for a in args]
    assert main(one) == 0
    assert capsys.readouterr().out.startswith("pgd eps=0.3: 1 image, success rate ")
    np.save(tmp_path / "y.npy", mnist.y_test[:5])
    assert main(args) == 2
    assert "labels" in _err_line(capsys)


def test_eval_with_attacks_has_mistakes_and_attack_columns(tiny_run, tmp_path, capsys):
    assert main(["eval", "--run", str(tiny_run.path), "--ood", "uniform_noise", "--limit", "300",
                 "--attacks", "40", "--attack-steps", "5", "--json", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    cols = {r["ood"] for r in res["results"]}
    assert {"mistakes", "fgsm@0.3", "pgd@0.3", "pgd_l2@2"} <= cols
    pgd = next(r for r in res["results"] if r["ood"] == "pgd@0.3")
    assert pgd["success_rate"] > 0.5 and pgd["n_attacked"] == 40
    assert res["attacks"]["success_rate"]["pgd@0.3"] == pgd["success_rate"]


def test_purify_command(tiny_run, tmp_path, capsys):
    assert main(["purify", "--run", str(tiny_run.path), "--n", "60", "--steps", "5", "--attack-steps", "3",
                 "--json", str(tmp_path / "p.json")]) == 0
    table = json.loads((tmp_path / "p.json").read_text())["results"]
    assert {"clean", "pgd@0.3", "pgd_l2@1"} <= set(table)
    clean = table["clean"]
    assert clean["n"] == 60 and 0.8 < clean["accuracy_before"] <= 1
    # fixed and broken reconcile with the accuracies
    assert clean["accuracy_after"] * 60 == pytest.approx(clean["accuracy_before"] * 60 + clean["fixed"] - clean["broken"])
    # the attacks are cached in the run under purify's own tag; a rerun reads them and agrees
    cached = sorted(p.name for p in (tiny_run.path / "scores").glob("purify_*_steps3.60.adv.npz"))
    assert len(cached) == len(table) - 1 and "purify_pgd@0.3_steps3.60.adv.npz" in cached
    assert main(["purify", "--run", str(tiny_run.path), "--n", "60", "--steps", "5", "--attack-steps", "3",
                 "--json", str(tmp_path / "p2.json")]) == 0
    assert json.loads((tmp_path / "p2.json").read_text())["results"] == table


@pytest.mark.parametrize("argv, message", [
    (["fit"], "--run"), (["fit", "--run", "R", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["fit", "--run", "R", "--epochs", "two"], "invalid int value"),
    (["eval", "--run", "R", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["frobnicate"], "invalid choice: 'frobnicate'")])
def test_usage_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _err_line(capsys)
    assert message in line and "--help" in line
    assert not any(tmp_path.iterdir())


def test_help_still_exits_zero(capsys):
    assert main(["fit", "--help"]) == 0
    assert "--union" in capsys.readouterr().out


def test_output_cut_short_by_the_reader_exits_1_without_traceback():
    """`abstain ... | head`: the reader closes the pipe while a command still prints."""
    code = ("import sys\nimport abstain.commands as c\nfrom abstain.cli import main\n"
            "def chatty(args):\n    for i in range(200000):\n        print('line', i)\n    return 0\n"
            "c.cmd_demo = chatty\nsys.exit(main(['demo']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
