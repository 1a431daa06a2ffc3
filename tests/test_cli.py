import json
import subprocess
import sys
from pathlib import Path

import pytest

import torch

from gcalib.cli import format_table, main
from gcalib.pretrain.compare import compare
from gcalib.pretrain.trainer import ContrastiveModel, PretrainConfig

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


def test_compare_function_takes_dataset_objects(tmp_path):
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (48, 3, 16, 16), dtype=torch.uint8), torch.arange(48) % 3
    train = [(images[i], labels[i]) for i in range(32)]
    test = [(images[i], labels[i]) for i in range(32, 48)]
    config = PretrainConfig(dataset=train, test_dataset=test, epochs=1, batch_size=16, workers=0, progress=False,
                            projector_hidden_dim=32, loss_params={"eps": 0.3})
    result = compare(config, ["gca_uot"], [0], tmp_path / "cmp", verbose=False)
    assert list(result.runs) == ["gca_uot", "random-init", "raw-pixels"]
    assert all(len(result.runs[name]) == 1 and 0 <= result.runs[name][0]["linear_acc"] <= 1 for name in result.runs)
    assert result.config["gca_uot"]["loss_params"] == {"eps": 0.3} and result.config["gca_uot"]["seed"] == 0
    assert result.dataset.startswith("ImageDataset('list', split='train', n=32, 3x16x16")
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["table"] == result.table().splitlines() and saved["dataset"] == result.dataset
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == PNG
    assert (tmp_path / "cmp" / "gca_uot" / "seed0" / "metrics.json").is_file()
    mixed = compare(config, ["infonce", "byol"], [0], verbose=False)
    assert mixed.config["infonce"]["loss_params"] == {"eps": 0.3} and mixed.config["byol"]["loss_params"] == {}
    with pytest.raises(ValueError, match=r"unknown losses\[1\] 'simclr'; valid: infonce"):
        compare(config, ["infonce", "simclr"], [0])
    with pytest.raises(ValueError, match="test_dataset must be given with a dataset object when evaluate=True"):
        compare(PretrainConfig(dataset=train, evaluate=False), ["infonce"], [0])


def test_format_table_mean_and_sample_std():
    table = format_table({"a": [{"linear_acc": 0.5, "epoch_time_s": 2.0}, {"linear_acc": 0.7, "epoch_time_s": 4.0}],
                          "b": [{"linear_acc": 0.9}]})
    lines = table.splitlines()
    assert lines[0].split() == ["method", "seeds", "linear", "s/epoch"]
    assert "0.600 ± 0.141" in lines[2] and "3.000 ± 1.414" in lines[2]
    assert lines[3].split() == ["b", "1", "0.900", "-"]


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
    (["compare", "--seeds", "two", "--out", "{tmp}/c"], "--seeds must be a count N or a comma-separated list"),
    (["compare", "--seeds", "0", "--out", "{tmp}/c"], "at least one distinct non-negative seed"),
    (["pretrain", "--views", "4", "--out", "{tmp}/a"], "argument --views: invalid choice: '4'"),
    ([], "the following arguments are required"),
    (["domain-sweep", "--alpha-minus-beta", "x", "--out", "{tmp}/s"], "--alpha-minus-beta"),
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
