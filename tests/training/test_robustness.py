"""The robustness grid: one comparison per setting, saved, read back, tabulated."""
import json
from pathlib import Path

import pytest
import torch

from gcalib.training import robustness as robustness_module
from gcalib.training.compare import format_table
from gcalib.training.config import PretrainConfig
from gcalib.training.robustness import ROBUSTNESS_SETTINGS, load_robustness, robustness, robustness_table

SETTINGS = {"clean": {}, "corrupt_0.4": {"corrupt_pairs": 0.4}}
RESULTS = Path(__file__).resolve().parents[2] / "notebooks" / "results"


@pytest.fixture(scope="module")
def config():
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (48, 3, 16, 16), dtype=torch.uint8), torch.arange(48) % 3
    return PretrainConfig(dataset=[(images[i], labels[i]) for i in range(32)],
                          test_dataset=[(images[i], labels[i]) for i in range(32, 48)], epochs=1, batch_size=16,
                          workers=0, progress=False, projector_hidden_dim=32)


@pytest.fixture(scope="module")
def grid(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    return out, robustness(config, SETTINGS, ["infonce"], [0, 1], out, verbose=False)


def test_every_setting_is_one_comparison_with_its_fields(grid):
    out, result = grid
    assert list(result["runs"]) == ["clean", "corrupt_0.4"] and result["settings"] == SETTINGS
    for name in SETTINGS:
        assert list(result["runs"][name]) == ["infonce", "random-init", "raw-pixels"]
        assert len(result["runs"][name]["infonce"]) == 2
        saved = json.loads((out / name / "compare.json").read_text())
        assert saved["config"]["infonce"]["corrupt_pairs"] == SETTINGS[name].get("corrupt_pairs", 0.0)
    assert load_robustness(out / "robustness.json") == json.loads(json.dumps(result))


def test_finished_settings_are_read_back_and_changed_ones_rerun(grid, config, monkeypatch):
    out, first = grid
    ran = []

    def fake_compare(setting, losses, seeds, where, verbose):
        ran.append(setting.epochs)
        raise RuntimeError("stop after recording")

    monkeypatch.setattr(robustness_module, "compare", fake_compare)
    again = robustness(config, SETTINGS, ["infonce"], [0, 1], out, verbose=False)
    assert ran == [] and again["runs"] == json.loads(json.dumps(first["runs"]))
    with pytest.raises(RuntimeError, match="stop after recording"):
        robustness(PretrainConfig(**{**vars(config), "epochs": 2}), SETTINGS, ["infonce"], [0, 1], out,
                   verbose=False)
    assert ran == [2]


def test_table_has_a_row_per_method_and_a_column_per_setting():
    grid = {"runs": {"clean": {"infonce": [{"linear_acc": 0.5}, {"linear_acc": 0.7}], "raw-pixels": [{"linear_acc": 0.2}]},
                     "corrupt_0.2": {"infonce": [{"linear_acc": 0.4}, {"linear_acc": 0.4}]}}}
    assert robustness_table(grid).splitlines() == [
        "| method | clean | corrupt_0.2 |",
        "|---|---|---|",
        "| infonce | 0.600 ± 0.141 | 0.400 ± 0.000 |",
        "| raw-pixels | 0.200 | - |",
    ]


def test_default_settings_and_bad_arguments(config):
    assert list(ROBUSTNESS_SETTINGS) == ["clean", "corrupt_0.2", "corrupt_0.4", "large_erase", "strong_crop",
                                         "brightness"]
    with pytest.raises(ValueError, match="settings must name at least one setting"):
        robustness(config, {}, ["infonce"], [0])
    with pytest.raises(TypeError, match="config must be a PretrainConfig, got str"):
        robustness("clutter_digits")


@pytest.mark.parametrize("name", ["clutter_robustness.json", "clutter_views.json"])
def test_committed_grids_load_and_tabulate(name):
    grid = load_robustness(RESULTS / name)
    assert grid["dataset"] == "clutter_digits" and list(grid["runs"]) == list(grid["settings"])
    lines = robustness_table(grid, "linear_acc").splitlines()
    assert lines[0] == "| method | " + " | ".join(grid["settings"]) + " |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| " + m for m in dict.fromkeys(
        method for runs in grid["runs"].values() for method in runs)]
    for runs in grid["runs"].values():
        rows = format_table(runs).splitlines()[2:]
        assert [row.split()[0] for row in rows] == list(runs)


def test_load_robustness_rejects_other_json(tmp_path):
    (tmp_path / "other.json").write_text('{"runs": {}}')
    with pytest.raises(ValueError, match=r"is not a robustness.json .* it lacks \['settings'\]"):
        load_robustness(tmp_path / "other.json")
