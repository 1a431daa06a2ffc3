"""compare(): methods over seeds with reference rows; its table, its saved files and their reading back."""
import json
import sys

import pytest
import torch

from gcalib.training.compare import CompareResult, compare, format_table
from gcalib.training.config import PretrainConfig

PNG = b"\x89PNG\r\n\x1a\n"


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


def test_format_table_leaves_out_missing_and_nan_values():
    table = format_table({"a": [{"linear_acc": 0.5, "alignment": float("nan")}, {"linear_acc": 0.7}]})
    assert table.splitlines()[2].split() == ["a", "2", "0.600", "±", "0.141", "-"]


def test_compare_result_json_round_trip(tmp_path):
    runs = {"infonce": [{"linear_acc": 0.5}, {"linear_acc": 0.7}], "raw-pixels": [{"linear_acc": 0.2}]}
    result = CompareResult(dataset="digits", losses=["infonce"], seeds=[0, 1], runs=runs,
                           config={"infonce": {"loss": "infonce"}}, total_time_s=3.0)
    files = result.save(tmp_path)
    assert set(files) == {"json", "figure"} and files["figure"].read_bytes()[:8] == PNG
    saved = json.loads(files["json"].read_text())
    assert list(saved) == ["dataset", "losses", "seeds", "total_time_s", "table", "runs", "config"]
    assert saved["table"] == result.table().splitlines()
    loaded = CompareResult.load(files["json"])
    assert (loaded.runs, loaded.seeds, loaded.config, loaded.out_dir) == (runs, [0, 1], result.config, None)
    (tmp_path / "bad.json").write_text('{"runs": {}}')
    with pytest.raises(ValueError, match=r"is not a compare.json written by CompareResult.save: it lacks \['dataset'"):
        CompareResult.load(tmp_path / "bad.json")


def test_without_matplotlib_the_numbers_are_written_and_the_figure_skipped_with_a_warning(tmp_path, monkeypatch):
    result = CompareResult(dataset="digits", losses=["infonce"], seeds=[0],
                           runs={"infonce": [{"linear_acc": 0.5, "knn_acc_k20": 0.4}]},
                           config={}, total_time_s=1.0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.warns(UserWarning, match=r"matplotlib is not installed, so .*compare.png is not drawn.*gcalib\[notebooks\]"):
        files = result.save(tmp_path)
    assert set(files) == {"json"} and not (tmp_path / "compare.png").exists()
    assert CompareResult.load(tmp_path / "compare.json").runs == result.runs
