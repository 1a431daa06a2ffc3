"""Mean ± sample std over seeds and the tables that show them; the seeds of an experiment."""
import math

import pytest

from gcalib.training.experiment import check_seeds
from gcalib.training.tables import markdown_table, mean_std, mean_std_text, plus_minus, text_table


def test_mean_and_sample_std():
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                                                                           + (4 - 7 / 3) ** 2) / 2))
    assert mean_std([0.3]) == (0.3, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])


def test_mean_std_text_leaves_out_missing_values():
    assert mean_std_text([0.5, None, 0.7, float("nan")]) == "0.600 ± 0.141" == plus_minus(0.6, math.sqrt(0.02))
    assert mean_std_text([0.25]) == "0.250" and mean_std_text([]) == "-" and mean_std_text([None]) == "-"


def test_text_table_pads_columns_and_rules_the_header():
    rows = [["a", "long header"], ["wide cell", "x"]]
    assert text_table(rows).splitlines() == ["a          long header", "---------  -----------",
                                             "wide cell  x          "]
    assert text_table(rows, align="right").splitlines()[2] == "wide cell            x"
    with pytest.raises(ValueError, match="align must be 'left' or 'right'"):
        text_table(rows, align="centre")
    with pytest.raises(ValueError, match="same number of cells"):
        text_table([["a", "b"], ["c"]])


def test_markdown_table():
    assert markdown_table(["m", "s1", "s2"], [["x", "1", "2"]]).splitlines() == [
        "| m | s1 | s2 |", "|---|---|---|", "| x | 1 | 2 |"]


def test_check_seeds():
    assert check_seeds((3, 0)) == [3, 0]
    with pytest.raises(ValueError, match=r"seeds lists a seed twice: \[1, 1\]"):
        check_seeds([1, 1])
    with pytest.raises(ValueError, match=r"seeds\[0\] must be an int >= 0, got -1"):
        check_seeds([-1])
