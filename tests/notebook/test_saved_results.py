"""Saved results read back: a robustness grid against its baseline and seed spread."""
import math

import numpy as np
import pytest

from gcalib.notebook import saved_results


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
