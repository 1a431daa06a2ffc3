"""Saved results read back: a robustness grid against its baseline and seed spread, a sweep.json."""
import math

import numpy as np
import pytest

from gcalib.notebook import saved_results
from gcalib.pretrain.sweep import SweepResult, plot_sweep


def _grid():
    def runs(values):
        return [{"linear_acc": v} for v in values]
    return {"runs": {"clean": {"infonce": runs([0.40, 0.50]), "gca_uot": runs([0.46, 0.48]),
                               "byol": runs([0.20, 0.22]), "random-init": runs([0.18, 0.18]),
                               "raw-pixels": runs([0.10])},
                     "corrupt_0.2": {"infonce": runs([0.30, 0.32]), "gca_uot": runs([0.50, 0.52, None])}}}


def test_versus_baseline_reads_each_difference_against_the_seed_spread():
    table = saved_results.versus_baseline(_grid())
    clean = table.loc["clean"]
    assert list(clean.index) == ["infonce", "gca_uot", "byol", "random-init", "raw-pixels"]
    assert clean.loc["gca_uot", "mean"] == pytest.approx(0.47)
    assert clean.loc["gca_uot", "minus baseline"] == pytest.approx(0.02)
    spread = math.sqrt((np.var([0.40, 0.50], ddof=1) + np.var([0.46, 0.48], ddof=1)) / 2)
    assert clean.loc["gca_uot", "spread"] == pytest.approx(spread)
    assert clean.loc["gca_uot", "reading"] == "within seed spread"
    assert clean.loc["byol", "reading"] == "below" and clean.loc["infonce", "reading"] == "-"
    assert clean.loc["raw-pixels", "reading"] == "-" and clean.loc["raw-pixels", "seeds"] == 1
    corrupt = table.loc["corrupt_0.2"]
    assert corrupt.loc["gca_uot", "seeds"] == 2 and corrupt.loc["gca_uot", "reading"] == "above"
    only = saved_results.versus_baseline(_grid(), settings=["corrupt_0.2", "brightness"])
    assert list(only.index.get_level_values(0).unique()) == ["corrupt_0.2"]
    with pytest.raises(ValueError, match="non-empty 'runs'"):
        saved_results.versus_baseline({"runs": {}})


def test_load_sweep_gives_back_the_saved_result(tmp_path):
    summary = [{"alpha_minus_beta": d, "alpha": max(d, 0.0), "beta": max(-d, 0.0), "n_seeds": 1,
                "domain_acc_mean": 0.5 + d / 2, "domain_acc_std": 0.0, "linear_acc_mean": 0.3, "linear_acc_std": 0.0,
                "heldout_domain_acc_mean": 0.2, "heldout_domain_acc_std": 0.0} for d in (-0.5, 0.0, 0.5)]
    result = SweepResult(dataset="clutter_digits", base=0.0, seeds=[0], runs=[], summary=summary,
                         spearman_domain=1.0, spearman_heldout=float("nan"), class_acc_spread=0.0, config={},
                         total_time_s=1.0, reference={"domain_acc": 0.57, "class_acc": 0.18,
                                                      "heldout_domain_acc": 0.14, "seed": 0})
    result.save(tmp_path)
    loaded = saved_results.load_sweep(tmp_path / "sweep.json")
    assert isinstance(loaded, SweepResult) and loaded.summary == summary and loaded.reference == result.reference
    assert loaded.table() == result.table()
    assert len(plot_sweep(loaded).lines) == 6
    (tmp_path / "bad.json").write_text('{"summary": []}')
    with pytest.raises(ValueError, match="lacks"):
        saved_results.load_sweep(tmp_path / "bad.json")
