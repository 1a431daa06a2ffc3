import json
import subprocess
import sys
from pathlib import Path

import pytest

from gcalib.cli import build_parser, main
from gcalib.training.contrastive import ContrastiveModel
from gcalib.training.sweep import DEFAULT_ALPHA_MINUS_BETA, SWEEP_DEFAULTS

TINY = ["--epochs", "1", "--batch-size", "32", "--max-train-samples", "64", "--workers", "0", "--no-progress",
        "--projector-hidden", "64"]
PNG = b"\x89PNG\r\n\x1a\n"


def usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_pretrain_writes_metrics_history_checkpoint_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--dataset", "digits_domains", "--loss", "gca_uot", "--eps", "0.4", "--n-iter", "3",
                 "--target", "domain", "--alpha", "0.2", "--beta", "0.1", *TINY, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("linear_acc", "knn_acc", "alignment", "uniformity", "epoch_time_s", "domain_acc", "heldout_domain_acc"):
        assert isinstance(metrics[key], float), key
    assert 0.0 <= metrics["linear_acc"] <= 1.0 and 0.0 <= metrics["domain_acc"] <= 1.0
    config = metrics["config"]
    assert config["loss"] == "gca_uot" and config["loss_params"] == {"eps": 0.4, "n_iter": 3}
    assert (config["target"], config["alpha"], config["beta"]) == ("domain", 0.2, 0.1)
    assert len(json.loads((out / "history.json").read_text())) == 1
    assert (out / "checkpoint-00001.pt").is_file() and (out / "encoder.pt").is_file()
    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert "gca_uot: linear_acc=" in capsys.readouterr().out


def test_compare_prints_table_with_reference_rows_and_writes_files(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--losses", "infonce,byol", "--seeds", "3,", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for row in ("infonce", "byol", "random-init", "raw-pixels"):
        assert any(line.startswith(row + " ") for line in printed.splitlines()), row
    assert "kNN k=20" in printed and "s/epoch" in printed
    report = json.loads((out / "compare.json").read_text())
    assert report["seeds"] == [3] and report["losses"] == ["infonce", "byol"]
    assert [len(report["runs"][k]) for k in ("infonce", "byol", "random-init", "raw-pixels")] == [1, 1, 1, 1]
    assert report["runs"]["byol"][0]["knn_acc"] > 0.1
    assert report["config"]["byol"]["loss"] == "byol" and report["config"]["infonce"]["seed"] == 3
    assert (out / "compare.png").read_bytes()[:8] == PNG
    assert (out / "infonce" / "seed3" / "metrics.json").is_file()


def test_pretrain_flags_for_views_and_broken_pairs_reach_the_config():
    from gcalib.cli import _config, build_parser

    args = build_parser().parse_args(["pretrain", "--n-views", "3", "--views", "rendered", "--corrupt-pairs", "0.25",
                                      "--out", "x"])
    config = _config(args, args.loss, args.seed, args.out)
    assert (config.n_views, config.views, config.corrupt_pairs) == (3, "rendered", 0.25)
    args = build_parser().parse_args(["compare"])
    defaults = _config(args, "infonce", 0, None)
    assert (defaults.n_views, defaults.views, defaults.corrupt_pairs) == (2, "augment", 0.0)


@pytest.mark.parametrize("argv, loss, expected", [
    ([], "gca_uot", ("rendered", "none", {"eps": 0.2})),
    (["--aug", "simclr", "--views", "augment", "--eps", "0.5"], "infonce", ("augment", "simclr", {"eps": 0.5})),
    (["--n-iter", "3"], "gca_ince", ("rendered", "none", {"eps": 0.2, "n_iter": 3})),
    ([], "byol", ("rendered", "none", {})),
])
def test_dataset_recipe_fills_the_flags_left_unset(argv, loss, expected):
    from gcalib.cli import _config, build_parser

    args = build_parser().parse_args(["compare", "--dataset", "clutter_digits", *argv])
    config = _config(args, loss, 0, None)
    assert (config.views, config.augmentation, config.loss_params) == expected
    assert config.loss == loss


@pytest.mark.parametrize("argv, message", [
    (["pretrain", "--loss", "nope", "--out", "x"], "invalid choice: 'nope'"),
    (["pretrain", "--loss", "infonce"], "the following arguments are required: --out"),
    (["pretrain", "--dataset", "mnist", "--out", "x"], "invalid choice: 'mnist'"),
    (["pretrain", "--epochs", "ten", "--out", "x"], "invalid int value: 'ten'"),
    (["pretrain", "--eps", "-1", "--out", "{tmp}/a"], "eps must be a finite number > 0, got -1.0"),
    (["pretrain", "--batch-size", "5000", "--out", "{tmp}/a"], "batch_size=5000 is larger than the 1346 samples"),
    (["pretrain", "--lr", "0", "--out", "{tmp}/a"], "lr must be a finite number > 0, got 0.0"),
    (["pretrain", "--out", "{tmp}/file/sub"], "is not a writable directory"),
    (["pretrain", "--dataset", "cifar10", "--root", "{tmp}/nodata", "--out", "{tmp}/a"], "nodata"),
    (["pretrain", "--target", "domain", "--out", "{tmp}/a"], "needs a dataset with domain labels"),
    (["pretrain", "--loss", "byol", "--eps", "0.2", "--out", "{tmp}/a"], "do not apply to byol"),
    (["compare", "--losses", "infonce,ntxent", "--out", "{tmp}/c"], "unknown name(s) ['ntxent']"),
    (["compare", "--seeds", "two", "--out", "{tmp}/c"], "argument --seeds: expected a count N (seeds 0..N-1)"),
    (["compare", "--seeds", "0", "--out", "{tmp}/c"], "expected at least one seed, all distinct and >= 0"),
    (["robustness", "--seeds", "1,1", "--out", "{tmp}/c"], "expected at least one seed, all distinct and >= 0"),
    (["robustness", "--settings", "clean,noise", "--out", "{tmp}/r"],
     "argument --settings: unknown name(s) ['noise']; valid: clean, corrupt_0.2"),
    (["pretrain", "--views", "4", "--out", "{tmp}/a"], "argument --views: invalid choice: '4'"),
    ([], "the following arguments are required"),
    (["domain-sweep", "--alpha-minus-beta", "x", "--out", "{tmp}/s"], "--alpha-minus-beta"),
    (["domain-sweep", "--alpha-minus-beta", "-0.5,a"], "argument --alpha-minus-beta: expected comma-separated numbers"),
    (["domain-sweep", "--seeds", "two"], "argument --seeds: expected a count N"),
    (["domain-sweep", "--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
    (["domain-sweep", "--dataset", "digits", "--out", "{tmp}/x"],
     "'digits' has none (try clutter_digits, digits_domains or domainfolder)"),
    (["domain-sweep", "--alpha-minus-beta", "0.1,0.1", "--out", "{tmp}/x"], "lists a value twice"),
    (["domain-sweep", "--image-size", "64", "--out", "{tmp}/y"],
     "unknown option(s) ['image_size'] for dataset clutter_digits"),
])
def test_usage_errors_exit_with_code_2(argv, message, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    err = usage_error(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert message in err


def test_resume_with_other_settings_is_a_usage_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["pretrain", *TINY, "--out", out]
    assert main(argv) == 0
    err = usage_error(capsys, ["pretrain", *TINY, "--lr", "0.1", "--resume", "--out", out])
    assert "cannot resume" in err and "lr: 0.002 -> 0.1" in err


def test_nonfinite_loss_exits_with_code_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ContrastiveModel, "loss", lambda self, h, v, t: h.sum() * float("nan"))
    assert main(["pretrain", *TINY, "--out", str(tmp_path / "run")]) == 1
    assert "non-finite loss" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gcalib", "pretrain", "--loss", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr


# ---- domain-sweep ------------------------------------------------------------------------------------


def test_number_lists_may_start_with_a_minus_sign_and_seeds_may_be_a_count():
    args = build_parser().parse_args(["domain-sweep", "--alpha-minus-beta", "-0.5,-0.2,-0.1,0,0.1,0.2,0.5",
                                      "--seeds", "3", "--out", "somewhere"])
    assert args.alpha_minus_beta == [-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5]
    assert args.seeds == [0, 1, 2] and args.out == "somewhere" and args.dataset == "clutter_digits"
    args = build_parser().parse_args(["domain-sweep", "--alpha-minus-beta", "-.5,.5", "--seeds", "4,7"])
    assert args.alpha_minus_beta == [-0.5, 0.5] and args.seeds == [4, 7]
    args = build_parser().parse_args(["domain-sweep", "--alpha-minus-beta=-0.2,0.2", "--base", "-0"])
    assert args.alpha_minus_beta == [-0.2, 0.2]
    defaults = build_parser().parse_args(["domain-sweep"])
    assert defaults.alpha_minus_beta == list(DEFAULT_ALPHA_MINUS_BETA) and defaults.seeds == [0, 1, 2]
    assert defaults.epochs == SWEEP_DEFAULTS["epochs"]


def test_domain_sweep_runs_a_tiny_sweep(disk, tmp_path, capsys):
    tree = tmp_path / "data"
    disk.write_domainfolder(tree, domains=("cartoon", "photo"), classes=("dog", "horse"), counts=(6, 6))
    out = tmp_path / "cli"
    assert main(["domain-sweep", "--dataset", "domainfolder", "--root", str(tree), "--alpha-minus-beta", "-0.2,0.2",
                 "--seeds", "1", "--epochs", "1", "--batch-size", "6", "--workers", "0", "--image-size", "8",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Spearman(alpha-beta, domain accuracy)" in printed
    assert f"wrote {out / 'sweep.json'}, {out / 'sweep.txt'} and {out / 'sweep.png'}" in printed
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["dataset"] == "domainfolder" and saved["config"]["batch_size"] == 6
    assert saved["config"]["dataset_options"] == {"image_size": 8}
    assert [(r["alpha"], r["beta"]) for r in saved["summary"]] == [(0.0, 0.2), (0.2, 0.0)]
