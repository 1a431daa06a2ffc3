"""The α−β domain sweep: the (α, β) mapping, Spearman's ρ, a tiny sweep writing its files, reading them back."""
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from gcalib.training import sweep
from gcalib.training.evaluate import evaluate_encoder
from gcalib.training.sweep import (DEFAULT_ALPHA_MINUS_BETA, SWEEP_METRICS, SweepResult, alpha_beta, domain_sweep,
                                   spearman)

RESULTS = Path(__file__).resolve().parents[2] / "notebooks" / "results"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- the (α, β) mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize("base", [0.0, 0.05, 1.0])
def test_alpha_beta_difference_is_d_and_smaller_weight_is_base(base):
    for d in DEFAULT_ALPHA_MINUS_BETA:
        alpha, beta = alpha_beta(d, base)
        assert alpha - beta == pytest.approx(d, abs=1e-12)
        assert min(alpha, beta) == base
        assert alpha >= 0 and beta >= 0


def test_alpha_beta_exact_values():
    assert alpha_beta(0.5) == (0.5, 0.0)
    assert alpha_beta(-0.2) == (0.0, 0.2)
    assert alpha_beta(0) == (0.0, 0.0)
    assert alpha_beta(-0.1, base=0.3) == (0.3, pytest.approx(0.4))


def test_alpha_beta_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"base must be a finite number >= 0, got -0\.1"):
        alpha_beta(0.2, base=-0.1)
    with pytest.raises(ValueError, match="alpha_minus_beta must be a finite number, got nan"):
        alpha_beta(float("nan"))
    with pytest.raises(TypeError, match=r"alpha_minus_beta must be a finite number, got '0.5' \(str\)"):
        alpha_beta("0.5")
    with pytest.raises(TypeError, match=r"base must be a finite number >= 0, got True \(bool\)"):
        alpha_beta(0.5, base=True)


# ---- Spearman --------------------------------------------------------------------------------------


def test_spearman_matches_closed_form_without_ties():
    x = [-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5]
    y = [0.70, 0.72, 0.80, 0.75, 0.90, 0.93, 0.95]
    rank_x = {v: i for i, v in enumerate(sorted(x))}
    rank_y = {v: i for i, v in enumerate(sorted(y))}
    n = len(x)
    closed = 1 - 6 * sum((rank_x[a] - rank_y[b]) ** 2 for a, b in zip(x, y)) / (n * (n * n - 1))
    assert spearman(x, y) == pytest.approx(closed, abs=1e-12)
    assert spearman(x, sorted(y)) == pytest.approx(1.0)
    assert spearman(x, sorted(y, reverse=True)) == pytest.approx(-1.0)


def test_spearman_with_ties_matches_scipy_and_constant_is_nan():
    x = [0, 1, 2, 3, 4, 5]
    y = [0.9, 1.0, 1.0, 0.95, 1.0, 0.9]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert math.isnan(spearman(x, [1.0] * 6))
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])


# ---- a tiny sweep on a PACS-layout tree --------------------------------------------------------------

TINY = dict(dataset_options={"dataset": "PACS", "image_size": 8}, batch_size=6, epochs=1, workers=0,
            projector_hidden_dim=16, projector_out_dim=8, probe_Cs=(1.0,))


@pytest.fixture(scope="module")
def tree(disk, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    disk.write_domainfolder(root, domains=("cartoon", "photo"), classes=("dog", "horse"), counts=(6, 6))
    return root


@pytest.fixture(scope="module")
def tiny_sweep(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    result = domain_sweep("domainfolder", (-0.5, 0.0, 0.5), seeds=(0, 1), out_dir=out, root=str(tree),
                          verbose=False, **TINY)
    return result, out


def test_tiny_sweep_writes_table_json_figure_and_runs(tiny_sweep):
    result, out = tiny_sweep
    assert result.files == {"json": out / "sweep.json", "table": out / "sweep.txt", "figure": out / "sweep.png"}
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "sweep.json").read_text())
    assert [row["alpha_minus_beta"] for row in saved["summary"]] == [-0.5, 0.0, 0.5]
    assert [(row["alpha"], row["beta"]) for row in saved["summary"]] == [(0.0, 0.5), (0.0, 0.0), (0.5, 0.0)]
    assert len(saved["runs"]) == 6 and {r["seed"] for r in saved["runs"]} == {0, 1}
    # Each run trained with its own (alpha, beta) and left its pretrain outputs.
    for run in saved["runs"]:
        run_dir = out / f"amb{run['alpha_minus_beta']:+.3f}_seed{run['seed']}"
        saved_run = json.loads((run_dir / "sweep_run.json").read_text())
        metrics = saved_run["metrics"]
        assert saved_run["config"] == json.loads((run_dir / "metrics.json").read_text())["config"]
        assert saved_run["config"]["target"] == "domain"
        assert (saved_run["config"]["alpha"], saved_run["config"]["beta"]) == alpha_beta(run["alpha_minus_beta"])
        assert saved_run["config"]["seed"] == run["seed"] and saved_run["config"]["epochs"] == 1
        assert (run_dir / "encoder.pt").is_file() and (run_dir / "sweep_run.json").is_file()
        for key, _ in SWEEP_METRICS:
            assert run[key] == metrics[key] and 0.0 <= run[key] <= 1.0
    # The summary is the mean and sample std over the seeds; the acceptance numbers follow from it.
    for row in saved["summary"]:
        for key, _ in SWEEP_METRICS:
            values = torch.tensor([r[key] for r in saved["runs"] if r["alpha_minus_beta"] == row["alpha_minus_beta"]],
                                  dtype=torch.float64)
            assert row[key + "_mean"] == pytest.approx(float(values.mean()))
            assert row[key + "_std"] == pytest.approx(float(values.std()))
    means = [row["linear_acc_mean"] for row in saved["summary"]]
    assert saved["class_acc_spread"] == pytest.approx(max(means) - min(means))
    domain = [row["domain_acc_mean"] for row in saved["summary"]]
    expected = stats.spearmanr([-0.5, 0.0, 0.5], domain).statistic if len(set(domain)) > 1 else float("nan")
    assert saved["spearman_domain"] == pytest.approx(expected, nan_ok=True)
    heldout = [row["heldout_domain_acc_mean"] for row in saved["summary"]]
    expected = stats.spearmanr([-0.5, 0.0, 0.5], heldout).statistic if len(set(heldout)) > 1 else float("nan")
    assert saved["spearman_heldout"] == pytest.approx(expected, nan_ok=True)
    table = (out / "sweep.txt").read_text().splitlines()
    assert table[0].split()[:4] == ["alpha-beta", "alpha", "beta", "seeds"]
    assert [line.split()[0] for line in table[2:5]] == ["-0.50", "+0.00", "+0.50"]
    assert table[-2].startswith("Spearman(alpha-beta, domain accuracy) =")
    assert table[-1].startswith("Spearman(alpha-beta, held-out-domain class accuracy) =")


def test_reference_is_the_random_init_encoder_in_json_table_and_figure(tiny_sweep, tree):
    from gcalib.training.data import load_dataset
    from gcalib.training.models import make_encoder

    result, out = tiny_sweep
    reference = json.loads((out / "sweep.json").read_text())["reference"]
    assert reference == result.reference and reference["seed"] == 0
    torch.manual_seed(0)  # the initial weights of the seed-0 runs
    encoder = make_encoder("small_cnn")
    splits = [load_dataset("domainfolder", split, root=tree, **TINY["dataset_options"]) for split in ("train", "test")]
    expected = evaluate_encoder(encoder, *splits, seed=0, Cs=TINY["probe_Cs"])
    assert reference["class_acc"] == expected["linear_acc"]
    for key in ("domain_acc", "heldout_domain_acc", "heldout_domain_acc_per_domain"):
        assert reference[key] == expected[key], key
    row = next(line for line in (out / "sweep.txt").read_text().splitlines() if line.startswith("random-init"))
    assert row.split() == ["random-init", "-", "-", "1", f"{reference['domain_acc']:.3f}",
                           f"{reference['class_acc']:.3f}", f"{reference['heldout_domain_acc']:.3f}"]
    ax = sweep.plot_sweep(result)
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [reference["domain_acc"], reference["class_acc"],
                                                        reference["heldout_domain_acc"]]
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert [d.get_color() for d in dashed] == [s.get_color() for s in solid]
    ax.figure.clf()


def test_finished_runs_are_reused_and_changed_settings_retrain(tiny_sweep, tree):
    result, out = tiny_sweep
    again = domain_sweep("domainfolder", (-0.5, 0.0, 0.5), seeds=(0, 1), out_dir=out, root=str(tree),
                         verbose=False, **TINY)
    assert all(run["reused"] for run in again.runs)
    assert [r["domain_acc"] for r in again.runs] == [r["domain_acc"] for r in result.runs]
    changed = domain_sweep("domainfolder", (-0.5, 0.5), seeds=(0,), out_dir=out, root=str(tree), verbose=False,
                           **{**TINY, "lr": 0.1})
    assert not any(run["reused"] for run in changed.runs)
    grid = domain_sweep("domainfolder", (-0.5, 0.5), seeds=(0,), out_dir=out, root=str(tree), verbose=False,
                        **{**TINY, "lr": 0.1, "probe_Cs": (0.5,)})
    assert not any(run["reused"] for run in grid.runs) and grid.config["probe_Cs"] == [0.5]


def test_sweep_without_out_dir_writes_nothing(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = domain_sweep("domainfolder", (0.0, 0.5), root=str(tree), verbose=False, **TINY)
    assert result.out_dir is None and result.files == {}
    assert list(tmp_path.iterdir()) == []
    assert len(result.table().splitlines()) == 7  # header, rule, 2 values, random-init, 2 Spearman lines


# ---- argument errors -----------------------------------------------------------------------------


def test_argument_errors_are_clear(tree):
    with pytest.raises(ValueError, match=r"sets \['alpha', 'target'\] itself"):
        domain_sweep("digits_domains", target="labels", alpha=0.3)
    with pytest.raises(ValueError, match=r"alpha_minus_beta lists a value twice: \[0.1, 0.1\]"):
        domain_sweep("digits_domains", (0.1, 0.1))
    with pytest.raises(ValueError, match="at least two values"):
        domain_sweep("digits_domains", (0.1,))
    with pytest.raises(TypeError, match=r"alpha_minus_beta must be a non-empty sequence, got '-0.5,0.5' \(str\)"):
        domain_sweep("digits_domains", "-0.5,0.5")
    with pytest.raises(ValueError, match=r"seeds\[0\] must be an int >= 0, got -1"):
        domain_sweep("digits_domains", seeds=[-1])
    with pytest.raises(TypeError, match="unknown training override.*colour"):
        domain_sweep("digits_domains", colour="red")
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        domain_sweep("digits_domains", epochs=0)
    with pytest.raises(ValueError, match="target='domain' needs a dataset with domain labels; 'digits' has none"):
        domain_sweep("digits")
    with pytest.raises(ValueError, match="must not set holdout_domain"):
        domain_sweep("digits_domains", dataset_options={"holdout_domain": "rotated"})
    with pytest.raises(ValueError, match=r"probe_Cs\[0\] must be a finite number > 0, got 0.0"):
        domain_sweep("digits_domains", probe_Cs=[0.0])
    with pytest.raises(ValueError, match="base must be a finite number >= 0, got -1.0"):
        domain_sweep("digits_domains", base=-1.0)
    with pytest.raises(TypeError, match="result must be a SweepResult"):
        sweep.plot_sweep({"summary": []})


def test_recorded_metrics_are_those_of_the_saved_encoder(tiny_sweep, tree):
    from gcalib.training.data import load_dataset
    from gcalib.training.models import make_encoder

    result, out = tiny_sweep
    run = result.runs[-1]
    encoder = make_encoder("small_cnn")
    encoder.load_state_dict(torch.load(out / f"amb{run['alpha_minus_beta']:+.3f}_seed{run['seed']}" / "encoder.pt"))
    splits = [load_dataset("domainfolder", split, root=tree, **TINY["dataset_options"]) for split in ("train", "test")]
    again = evaluate_encoder(encoder, *splits, seed=run["seed"], Cs=TINY["probe_Cs"])
    assert set(again["heldout_domain_acc_per_domain"]) == {"cartoon", "photo"}
    for key, _ in SWEEP_METRICS:
        assert again[key] == run[key]
    assert again["heldout_domain_acc_per_domain"] == run["heldout_domain_acc_per_domain"]


# ---- reading a sweep back ----------------------------------------------------------------------------


def test_saved_sweep_loads_back_equal(tiny_sweep, tmp_path):
    result = dataclasses.replace(tiny_sweep[0])  # a copy: saving sets out_dir and files
    files = result.save(tmp_path)
    loaded = SweepResult.load(files["json"])
    assert isinstance(loaded, SweepResult) and loaded.out_dir == tmp_path and loaded.files == {}
    # NaN (a constant column's Spearman) is not equal to itself: compare the JSON texts.
    assert json.dumps(loaded.to_dict()) == json.dumps(json.loads(files["json"].read_text()))
    assert loaded.runs == result.runs and loaded.summary == result.summary and loaded.table() == result.table()
    assert len(sweep.plot_sweep(loaded).lines) == 6


def test_committed_sweep_loads_and_gives_its_table():
    path = RESULTS / "clutter_sweep.json"
    loaded = SweepResult.load(path)
    saved = json.loads(path.read_text())
    assert loaded.dataset == "clutter_digits" and loaded.seeds == [0, 1, 2] and len(loaded.summary) == 7
    assert loaded.table().splitlines() == saved["table"]
    assert loaded.to_dict() == saved


def test_load_names_what_a_json_file_lacks(tmp_path):
    (tmp_path / "bad.json").write_text('{"summary": []}')
    with pytest.raises(ValueError, match=r"bad.json is not a sweep.json written by SweepResult.save: it lacks "
                                         r"\['dataset', 'base', 'seeds', 'runs'"):
        SweepResult.load(tmp_path / "bad.json")
