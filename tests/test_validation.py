"""gcalib.validation: the scalar checks every module uses, and their one message format
"NAME must be EXPECTED, got VALUE" (TypeErrors add the type name)."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gcalib.losses import targets as plans
from gcalib.training.augment import BrightnessShift, recipe
from gcalib.training.batch_augment import gaussian_blur, sample_crop_boxes, sample_jitter_params
from gcalib.training.checkpoint import CHECKPOINT_KEYS, save_checkpoint
from gcalib.training.config import PretrainConfig
from gcalib.training.data import load_dataset
from gcalib.training.evaluate import linear_probe, uniformity
from gcalib.notebook.run_directories import config_digest
from gcalib.losses.gca import make_loss
from gcalib.training.models import Projector, make_encoder
from gcalib.ot.solver import sinkhorn
from gcalib.training.sweep import alpha_beta
from gcalib.validation import (check_bool, check_choice, check_float_tensor, check_ids, check_int, check_nonnegative,
                               check_positive, check_real, check_sequence, fail)


def raises(error: type, message: str):
    """pytest.raises matching the whole message exactly."""
    return pytest.raises(error, match=f"^{re.escape(message)}$")


# ------------------------------------------------------------------------------------------ fail

def test_fail_formats_value_errors_with_the_repr_and_type_errors_with_the_type_name():
    with raises(ValueError, "size must be a power of two, got 3"):
        fail("size", 3, "a power of two")
    with raises(ValueError, "root must be a path, got 'a\\nb'"):
        fail("root", "a\nb", "a path")
    with raises(TypeError, "root must be a path, got 3.5 (float)"):
        fail("root", 3.5, "a path", TypeError)
    with raises(TypeError, "root must be a path, got None (NoneType)"):
        fail("root", None, "a path", TypeError)


# ------------------------------------------------------------------------------------- check_int

def test_check_int_returns_the_value_itself():
    assert check_int("n", 7) == 7
    assert check_int("n", 0, 0) == 0 and check_int("n", 64, 1, 64) == 64 and check_int("n", -5, maximum=-5) == -5
    big = 10**30
    assert check_int("n", big, 1) is big


@pytest.mark.parametrize("minimum,maximum,expected", [
    (None, None, "an int"), (2, None, "an int >= 2"), (None, 9, "an int <= 9"), (1, 64, "an int in [1, 64]"),
])
@pytest.mark.parametrize("value", [2.5, 3.0, True, False, "3", None, np.int64(3), torch.tensor(3)])
def test_check_int_rejects_every_non_int_with_a_type_error(minimum, maximum, expected, value):
    with raises(TypeError, f"n must be {expected}, got {value!r} ({type(value).__name__})"):
        check_int("n", value, minimum, maximum)


@pytest.mark.parametrize("value,minimum,maximum,expected", [
    (1, 2, None, "an int >= 2"),
    (-1, 0, None, "an int >= 0"),
    (10, None, 9, "an int <= 9"),
    (0, 1, 64, "an int in [1, 64]"),
    (65, 1, 64, "an int in [1, 64]"),
])
def test_check_int_bounds_raise_value_errors(value, minimum, maximum, expected):
    with raises(ValueError, f"n_views must be {expected}, got {value}"):
        check_int("n_views", value, minimum, maximum)


@given(st.integers(-1000, 1000), st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_check_int_accepts_exactly_the_closed_range(value, a, b):
    low, high = min(a, b), max(a, b)
    if low <= value <= high:
        assert check_int("n", value, low, high) == value
    else:
        with pytest.raises(ValueError):
            check_int("n", value, low, high)


# ------------------------------------------------------------------------------------ check_real

def test_check_real_returns_a_float_and_passes_a_float_to_ok():
    seen = []
    out = check_real("x", 3, lambda v: seen.append(type(v)) or True, "anything")
    assert out == 3.0 and type(out) is float and seen == [float]
    assert check_real("x", -2.5) == -2.5
    assert check_real("x", np.float64(0.25)) == 0.25  # a float subclass


@pytest.mark.parametrize("value", [True, False, "0.5", None, 1j, np.float32(0.5), torch.tensor(0.5), [0.5]])
def test_check_real_rejects_non_numbers_and_bools_with_a_type_error(value):
    with raises(TypeError, f"q must be a number in (0, 1], got {value!r} ({type(value).__name__})"):
        check_real("q", value, lambda v: 0 < v <= 1, "a number in (0, 1]")


def test_check_real_default_is_any_finite_number():
    for bad in (math.inf, -math.inf, math.nan):
        with raises(ValueError, f"d must be a finite number, got {bad!r}"):
            check_real("d", bad)


def test_check_real_rejects_nan_even_when_ok_accepts_everything():
    assert check_real("reg", math.inf, lambda v: True, "a number") == math.inf
    with raises(ValueError, "reg must be a number, got nan"):
        check_real("reg", math.nan, lambda v: True, "a number")


def test_check_real_failed_condition_is_a_value_error_showing_the_value_as_given():
    with raises(ValueError, "q must be a number in (0, 1], got 0"):
        check_real("q", 0, lambda v: 0 < v <= 1, "a number in (0, 1]")
    with raises(ValueError, "q must be a number in (0, 1], got 1.5"):
        check_real("q", 1.5, lambda v: 0 < v <= 1, "a number in (0, 1]")


def test_check_positive_and_check_nonnegative_bounds():
    assert check_positive("eps", 1e-300) == 1e-300 and check_positive("eps", 2) == 2.0
    for bad in (0, 0.0, -1e-12, math.inf, math.nan):
        with raises(ValueError, f"eps must be a finite number > 0, got {bad!r}"):
            check_positive("eps", bad)
    assert check_nonnegative("r1", 0) == 0.0 and check_nonnegative("r1", 5.5) == 5.5
    for bad in (-1e-12, -3, math.inf, math.nan):
        with raises(ValueError, f"r1 must be a finite number >= 0, got {bad!r}"):
            check_nonnegative("r1", bad)
    with raises(TypeError, "r1 must be a finite number >= 0, got True (bool)"):
        check_nonnegative("r1", True)


# ----------------------------------------------------------------------------- bool, choice, sequence

def test_check_bool_accepts_only_bools():
    assert check_bool("blur", True) is True and check_bool("blur", False) is False
    for bad in (1, 0, "yes", None, np.bool_(True)):
        with raises(TypeError, f"blur must be a bool, got {bad!r} ({type(bad).__name__})"):
            check_bool("blur", bad)


def test_check_choice_returns_the_value_or_lists_the_valid_ones():
    assert check_choice("loss", "rince", ("infonce", "rince")) == "rince"
    assert check_choice("kind", "b", ["a", "b"]) == "b"
    with raises(ValueError, "unknown loss 'simclr'; valid: infonce, rince"):
        check_choice("loss", "simclr", ("infonce", "rince"))
    with raises(ValueError, "unknown severity 7; valid: 1, 2, 3"):
        check_choice("severity", 7, (1, 2, 3))
    with raises(ValueError, "unknown loss ['infonce']; valid: infonce"):
        check_choice("loss", ["infonce"], ("infonce",))


def test_check_sequence_checks_every_entry_and_names_its_index():
    assert check_sequence("Cs", (1, 0.5), check_positive) == [1.0, 0.5]
    assert check_sequence("seeds", (s for s in (3, 0)), lambda name, v: check_int(name, v, 0)) == [3, 0]
    with raises(ValueError, "Cs[1] must be a finite number > 0, got -1"):
        check_sequence("Cs", [1, -1], check_positive)
    with raises(TypeError, "seeds[0] must be an int >= 0, got 1.5 (float)"):
        check_sequence("seeds", [1.5], lambda name, v: check_int(name, v, 0))
    with raises(ValueError, "Cs must be a non-empty sequence, got []"):
        check_sequence("Cs", (), check_positive)
    for bad in ("0.5,1", b"01", 3, None):
        with raises(TypeError, f"Cs must be a non-empty sequence, got {bad!r} ({type(bad).__name__})"):
            check_sequence("Cs", bad, check_positive)


# --------------------------------------------------------------- the package's call sites use them

SAMPLES = (torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 2)


@pytest.mark.parametrize("call,error,message", [
    (lambda: PretrainConfig(batch_size=2.0), TypeError, "batch_size must be an int >= 2, got 2.0 (float)"),
    (lambda: PretrainConfig(lr=math.inf), ValueError, "lr must be a finite number > 0, got inf"),
    (lambda: PretrainConfig(weight_decay=math.inf), ValueError, "weight_decay must be a finite number >= 0, got inf"),
    (lambda: PretrainConfig(momentum=1.0), ValueError, "momentum must be a number in [0, 1), got 1.0"),
    (lambda: PretrainConfig(progress=1), TypeError, "progress must be a bool, got 1 (int)"),
    (lambda: PretrainConfig(optimizer="lamb"), ValueError, "unknown optimizer 'lamb'; valid: sgd, adam"),
    (lambda: PretrainConfig(root=3), TypeError, "root must be None or a path, got 3 (int)"),
    (lambda: make_loss("gca_uot", reg_b=math.nan), ValueError,
     "reg_b must be a number > 0 (float('inf') for a hard marginal), got nan"),
    (lambda: make_loss("infonce", scored="exact"), ValueError, "unknown scored plan 'exact'; valid: projected, sinkhorn"),
    (lambda: make_loss("infonce", gather_distributed=0), TypeError, "gather_distributed must be a bool, got 0 (int)"),
    (lambda: make_loss(3), TypeError, "loss name must be a str, got 3 (int)"),
    (lambda: plans.domain_plan(torch.tensor([0, 1]), 0.1, math.inf), ValueError,
     "beta must be a finite number >= 0, got inf"),
    (lambda: sinkhorn(torch.rand(3, 3), 0.1, n_iter=2.0), TypeError, "n_iter must be an int >= 0, got 2.0 (float)"),
    (lambda: sinkhorn(torch.rand(3, 3), 0.1, n_iter=None, max_iter=0), ValueError,
     "max_iter must be an int >= 1, got 0"),
    (lambda: make_encoder("small_cnn", in_channels=True), TypeError, "in_channels must be an int >= 1, got True (bool)"),
    (lambda: Projector(8, hidden_dim=0), ValueError, "hidden_dim must be an int >= 1, got 0"),
    (lambda: sample_crop_boxes(2.0, 8, 8, (0.2, 1.0), (0.75, 1.33)), TypeError, "n must be an int >= 0, got 2.0 (float)"),
    (lambda: sample_jitter_params(2, (0.4, 0.4, 0.4, 0.1), 1.5), ValueError,
     "p must be a probability in [0, 1], got 1.5"),
    (lambda: sample_jitter_params(2, (-0.4, 0.4, 0.4, 0.1), 0.5), ValueError,
     "brightness jitter must be a finite number >= 0, got -0.4"),
    (lambda: gaussian_blur(torch.rand(1, 3, 8, 8), 4, torch.ones(1)), ValueError,
     "kernel_size must be an odd int >= 1, got 4"),
    (lambda: linear_probe(*SAMPLES, *SAMPLES, Cs=(1.0, math.inf)), ValueError,
     "Cs[1] must be a finite number > 0, got inf"),
    (lambda: linear_probe(*SAMPLES, *SAMPLES, val_fraction=1.0), ValueError,
     "val_fraction must be a number in (0, 1), got 1.0"),
    (lambda: uniformity(SAMPLES[0], chunk_size=0), ValueError, "chunk_size must be an int >= 1, got 0"),
    (lambda: uniformity(SAMPLES[0], t=True), TypeError, "t must be a finite number > 0, got True (bool)"),
    (lambda: alpha_beta(math.inf), ValueError, "alpha_minus_beta must be a finite number, got inf"),
    (lambda: recipe("simclr", blur="yes"), TypeError, "blur must be a bool, got 'yes' (str)"),
    (lambda: BrightnessShift(6), ValueError, "severity must be an int in [1, 5], got 6"),
    (lambda: load_dataset("digits", download=0), TypeError, "download must be a bool, got 0 (int)"),
    (lambda: load_dataset(5), TypeError, "name must be a str, got 5 (int)"),
    (lambda: config_digest(PretrainConfig(), length=65), ValueError, "length must be an int in [1, 64], got 65"),
])
def test_call_sites_raise_the_shared_messages(call, error, message):
    with raises(error, message):
        call()


def test_checkpoint_keep_is_checked_before_anything_is_written(tmp_path):
    state = dict.fromkeys(CHECKPOINT_KEYS, 0)
    with raises(TypeError, "keep must be an int >= 1, got 1.5 (float)"):
        save_checkpoint(state, tmp_path / "run", keep=1.5)
    assert not (tmp_path / "run").exists()


def test_check_float_tensor_accepts_float_tensors_only():
    x = torch.zeros(2, 3)
    assert check_float_tensor("x", x) is x
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got list$"):
        check_float_tensor("x", [1.0])
    with pytest.raises(TypeError, match=r"^x must be a floating-point tensor, got dtype torch.int64; use .float\(\)$"):
        check_float_tensor("x", torch.zeros(2, dtype=torch.long))


def test_check_ids_has_one_policy_type_errors_for_dtypes_value_errors_for_values():
    ids = torch.tensor([0, 2, 1])
    assert check_ids("labels", ids) is ids
    assert check_ids("labels", [3, 1]).tolist() == [3, 1]
    assert check_ids("labels", np.array([3, 1], dtype=np.int32)).dtype == torch.int32
    for bad in (torch.tensor([0.0, 1.0]), torch.tensor([True, False]), torch.tensor([1j, 2j])):
        with pytest.raises(TypeError, match=rf"^labels must be an integer tensor \(one id per sample\), got dtype "
                                            rf"{re.escape(str(bad.dtype))}; pass integer ids, e.g. labels.long\(\)$"):
            check_ids("labels", bad)
    with pytest.raises(TypeError, match=r"^labels must be an integer tensor \(one id per sample\), got str$"):
        check_ids("labels", "abc")
    with pytest.raises(ValueError, match=r"^domains must be one-dimensional \(one domain id per sample\), got shape \(1, 2\)$"):
        check_ids("domains", torch.tensor([[0, 1]]), what="one domain id per sample")
    with pytest.raises(ValueError, match=r"^labels must hold one id per sample \(3\), got 2$"):
        check_ids("labels", torch.tensor([0, 1]), length=3)
    with pytest.raises(ValueError, match=r"^labels must hold at least 2 ids \(one id per sample\), got 1$"):
        check_ids("labels", torch.tensor([0]), min_length=2)
    with pytest.raises(ValueError, match=r"^labels must hold non-negative ids \(one id per sample\), got minimum -1$"):
        check_ids("labels", torch.tensor([0, -1]), nonnegative=True)
    assert check_ids("labels", torch.tensor([0, -1])).tolist() == [0, -1]
