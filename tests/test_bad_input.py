"""The bad-input table: every usage error of the Python API, the config and the CLI names the argument,
the value received and what is expected.

Each case is one row: an action, the error it must raise (``SystemExit`` with code 2 for the CLI, the
message then read from stderr) and three pieces of text the message must contain: the argument, the
received value (one string, or several that must all appear) and the expectation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import pytest
import torch

from gcalib.losses import targets as plans
from gcalib.training.augment import recipe
from gcalib.cli import main
from gcalib.training.data import DatasetCorruptError, DatasetNotFoundError, load_dataset
from gcalib.training.evaluate import knn_accuracy, linear_probe
from gcalib.losses.gca import gca_loss, make_loss
from gcalib.training.models import make_encoder
from gcalib.ot.solver import sinkhorn
from gcalib.losses.sharded import shard_rows
from gcalib.training.trainer import PretrainConfig, prepare, pretrain

B, D = 4, 3
TINY = dict(dataset="digits", max_train_samples=16, batch_size=8, epochs=1, projector_hidden_dim=32,
            progress=False, evaluate=False)
TINY_FLAGS = ["pretrain", "--dataset", "digits", "--max-train-samples", "16", "--batch-size", "8", "--epochs", "1",
              "--projector-hidden", "32", "--no-progress"]


@dataclass(frozen=True)
class Env:
    """What an action may use: a fresh directory and, on demand, a finished one-epoch run."""

    tmp: Path
    request: pytest.FixtureRequest

    def run(self) -> Path:
        return self.request.getfixturevalue("trained_run")

    @property
    def disk(self):
        return self.request.getfixturevalue("disk")


@dataclass(frozen=True)
class Case:
    """One row of the table; ``action`` is a callable of :class:`Env` or, for the CLI, an argv whose
    placeholders (``{tmp}`` and the keys of ``PLACEHOLDERS``) are filled in."""

    name: str
    action: Union[Callable[[Env], object], list]
    error: type
    argument: str
    value: Union[str, tuple]
    expected: str


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished one-epoch digits run with a checkpoint (the same config as ``TINY_FLAGS``)."""
    out = tmp_path_factory.mktemp("trained")
    pretrain(PretrainConfig(**TINY, out_dir=str(out)))
    assert (out / "checkpoint-00001.pt").is_file()
    return out


def views(*shapes, **kwargs) -> list:
    return [torch.randn(*shape, **kwargs) for shape in shapes]


def with_entry(tensor: torch.Tensor, index: tuple, value: float) -> torch.Tensor:
    tensor[index] = value
    return tensor


def loss_with_target(target: torch.Tensor):
    return make_loss("infonce")(*views((B, D), (B, D)), target=target)


def blocker(env: Env) -> Path:
    """A regular file: a directory path below it can be neither created nor written."""
    path = env.tmp / "file"
    path.write_text("not a directory")
    return path


def corrupt_cifar10(env: Env) -> Path:
    """Real-format CIFAR-10 files under env.tmp with one training batch truncated."""
    env.disk.write_cifar10(env.tmp)
    batch = env.tmp / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:100])
    return env.tmp


def garbage_cifar10c(env: Env):
    env.disk.write_cifar10c(env.tmp, corruptions=("fog",))
    (env.tmp / "CIFAR-10-C" / "fog.npy").write_bytes(b"\x93NUMPY garbage")
    return load_dataset("cifar10c", "test", root=env.tmp, corruption="fog")


def resume_with_other_lr(env: Env):
    return prepare(PretrainConfig(**TINY, out_dir=str(env.run()), resume=True, lr=1e-3))


API = [
    # views: shapes, devices, dtypes, sizes, values
    Case("views-different-shapes", lambda e: gca_loss(*views((B, D), (B + 1, D))),
         ValueError, "views", ("(4, 3)", "(5, 3)"), "same shape"),
    Case("views-different-devices", lambda e: gca_loss(torch.randn(B, D), torch.empty(B, D, device="meta")),
         ValueError, "views", ("cpu", "meta"), "one device"),
    Case("views-different-dtypes", lambda e: gca_loss(torch.randn(B, D), torch.randn(B, D, dtype=torch.float64)),
         ValueError, "views", ("torch.float32", "torch.float64"), "share a dtype"),
    Case("views-integer-dtype", lambda e: gca_loss(*(torch.ones(B, D, dtype=torch.int64),) * 2),
         TypeError, "view 0", "torch.int64", "floating-point"),
    Case("views-not-2d", lambda e: gca_loss(*views((B,), (B,))),
         ValueError, "view 0", "(4,)", "shape (batch, dim)"),
    Case("single-view", lambda e: gca_loss(torch.randn(B, D)),
         ValueError, "views", "got 1", "at least two views"),
    Case("empty-batch", lambda e: gca_loss(*views((0, D), (0, D))),
         ValueError, "view", "batch size 0", "at least two samples"),
    Case("nan-embedding", lambda e: gca_loss(torch.randn(B, D), with_entry(torch.randn(B, D), (2, 1), math.nan)),
         ValueError, "views", ("view 1, sample 2, column 1", "nan"), "must be finite"),
    Case("inf-embedding", lambda e: gca_loss(with_entry(torch.randn(B, D), (0, 0), -math.inf), torch.randn(B, D)),
         ValueError, "views", ("view 0, sample 0", "-inf"), "must be finite"),
    Case("zero-embedding", lambda e: gca_loss(torch.randn(B, D), with_entry(torch.randn(B, D), 3, 0.0)),
         ValueError, "views", ("zero norm", "view 1, sample 3"), "non-zero rows"),
    # loss hyper-parameters
    Case("eps-zero", lambda e: make_loss("infonce", eps=0.0), ValueError, "eps", "got 0.0", "> 0"),
    Case("eps-nan", lambda e: make_loss("gca_ince", eps=math.nan), ValueError, "eps", "got nan", "> 0"),
    Case("eps-overflows-float32", lambda e: make_loss("gca_uot", eps=1e-40),
         ValueError, "eps", "got 1e-40", "at least EPS_MIN = 1e-30"),
    Case("eps-string", lambda e: make_loss("infonce", eps="0.5"), TypeError, "eps", "'0.5' (str)", "a finite number > 0"),
    Case("n-iter-negative", lambda e: make_loss("gca_ince", n_iter=-1), ValueError, "n_iter", "got -1", ">= 0"),
    Case("n-iter-float", lambda e: make_loss("gca_ince", n_iter=2.5), TypeError, "n_iter", "got 2.5", "an int"),
    Case("q-above-one", lambda e: make_loss("rince", q=1.5), ValueError, "q", "got 1.5", "in (0, 1]"),
    Case("q-zero", lambda e: make_loss("gca_rince", q=0), ValueError, "q", "got 0", "in (0, 1]"),
    Case("lambda-zero", lambda e: make_loss("rince", lam=0.0), ValueError, "lam", "got 0.0", "> 0"),
    Case("rho-negative", lambda e: make_loss("gca_uot", reg_a=-0.2), ValueError, "reg_a", "got -0.2", "> 0"),
    Case("r1-negative", lambda e: make_loss("gca_uot", r1=-1.0), ValueError, "r1", "got -1.0", ">= 0"),
    Case("r2-infinite", lambda e: make_loss("gca_uot", r2=math.inf), ValueError, "r2", "got inf", "finite"),
    Case("r1-r2-both-zero", lambda e: make_loss("gca_uot", r1=0.0, r2=0.0),
         ValueError, "r1 and r2", "both 0", "r1 > 0 or r2 > 0"),
    Case("shard-plan-without-gather", lambda e: make_loss("gca_ince", shard_plan=True),
         ValueError, "gather_distributed", "got False", "True when shard_plan=True"),
    Case("shard-plan-unrolled", lambda e: make_loss("gca_uot", gather_distributed=True, shard_plan=True, grad="unroll"),
         ValueError, "grad", "got 'unroll'", "'fused' when shard_plan=True"),
    Case("shard-plan-int", lambda e: make_loss("iot", gather_distributed=True, shard_plan=1),
         TypeError, "shard_plan", "got 1 (int)", "a bool"),
    Case("unknown-loss", lambda e: make_loss("simclr"),
         ValueError, "loss", "'simclr'", "valid: infonce, hs_ince, gca_ince"),
    Case("unknown-hyper-parameter", lambda e: make_loss("infonce", temperature=0.1),
         TypeError, "hyper-parameter", "temperature", "valid: ["),
    # targets
    Case("target-shape", lambda e: loss_with_target(plans.positive_pairs(B - 1)),
         ValueError, "target", "got (6, 6)", "shape (8, 8)"),
    Case("target-negative", lambda e: loss_with_target(with_entry(plans.positive_pairs(B), (0, 1), -2.0)),
         ValueError, "target", "-2", "non-negative"),
    Case("target-nan", lambda e: loss_with_target(with_entry(plans.positive_pairs(B), (3, 5), math.nan)),
         ValueError, "target", "target[3, 5] = nan", "must be finite"),
    Case("target-diagonal", lambda e: loss_with_target(plans.positive_pairs(B).fill_diagonal_(1.0)),
         ValueError, "target", "target[0, 0] = 1", "zero diagonal"),
    Case("target-empty-row", lambda e: loss_with_target(with_entry(plans.positive_pairs(B), 2, 0.0)),
         ValueError, "target", "rows [2] sum to zero", "positive mass"),
    Case("target-wrong-device", lambda e: loss_with_target(torch.empty(2 * B, 2 * B, device="meta")),
         ValueError, "target", ("meta", "cpu"), "must be on the embeddings' device"),
    Case("target-integer", lambda e: loss_with_target(plans.positive_pairs(B).long()),
         TypeError, "target", "torch.int64", "floating-point"),
    Case("target-rows-shape", lambda e: plans.validate_target(torch.ones(3, 8), 8, torch.arange(4)),
         ValueError, "target", "got (3, 8)", "shape (4, 8) with shard_plan=True"),
    Case("target-rows-self-pair",
         lambda e: plans.validate_target(with_entry(plans.from_labels(torch.tensor([0, 1, 0, 1]), rows=torch.tensor([2, 3])),
                                                    (1, 3), 1.0), 8, torch.tensor([2, 3])),
         ValueError, "target", "target[1, 3] = 1", "zero diagonal"),
    Case("plan-rows-out-of-range", lambda e: plans.from_labels(torch.tensor([0, 1, 1]), rows=torch.tensor([0, 6])),
         ValueError, "rows", "from 0 to 6", "indices in [0, 6)"),
    Case("shard-rows-rank", lambda e: shard_rows(4, rank=2, world_size=2), ValueError, "rank", "got 2", "an int in [0, 1]"),
    Case("labels-float", lambda e: plans.from_labels(torch.tensor([0.0, 1.0, 1.0])),
         TypeError, "labels", "torch.float32", "integer tensor"),
    Case("domain-alpha-negative", lambda e: plans.domain_plan(torch.tensor([0, 1, 1]), -0.1, 0.0),
         ValueError, "alpha", "got -0.1", ">= 0"),
    Case("batch-size-float", lambda e: plans.positive_pairs(4.0), TypeError, "batch_size", "4.0", "an int"),
    # the solver
    Case("sinkhorn-eps-zero", lambda e: sinkhorn(torch.rand(3, 3), 0.0),
         ValueError, "eps", "got 0.0", "a finite number > 0"),
    Case("sinkhorn-n-iter-negative", lambda e: sinkhorn(torch.rand(3, 3), 0.1, n_iter=-1),
         ValueError, "n_iter", "got -1", "an int >= 0"),
    Case("sinkhorn-negative-marginal", lambda e: sinkhorn(torch.rand(3, 3), 0.1, a=torch.tensor([0.5, -0.5, 1.0])),
         ValueError, "a", "a[1] = -0.5", "strictly positive"),
    Case("sinkhorn-nan-cost", lambda e: sinkhorn(with_entry(torch.rand(3, 3), (1, 2), math.nan), 0.1),
         ValueError, "cost", "cost[1, 2] = nan", "must not contain NaN"),
    # names of datasets, augmentations, architectures
    Case("unknown-dataset", lambda e: load_dataset("mnist"),
         ValueError, "dataset", "'mnist'", "valid: digits, digits_domains, "),
    Case("unknown-split", lambda e: load_dataset("digits", "val"),
         ValueError, "split", "'val'", "expected one of ['train', 'test']"),
    Case("unknown-dataset-option", lambda e: load_dataset("digits", corruption="fog"),
         TypeError, "option", "corruption", "accepted options: none"),
    Case("unknown-augmentation", lambda e: recipe("autoaugment"),
         ValueError, "augmentation", "'autoaugment'", "valid: simclr, large_erase"),
    Case("unknown-arch", lambda e: make_encoder("vit"),
         ValueError, "arch", "'vit'", "valid: resnet18, resnet50, small_cnn"),
    # dataset files
    Case("missing-dataset", lambda e: load_dataset("cifar10", root=e.tmp / "nodata"),
         DatasetNotFoundError, "root", ("nodata", "cifar-10-batches-py/data_batch_1"), "download=True"),
    Case("corrupt-dataset", lambda e: load_dataset("cifar10", root=corrupt_cifar10(e)),
         DatasetCorruptError, "cifar10", "cifar-10-batches-py", "could not be parsed"),
    Case("corrupt-npy", garbage_cifar10c, DatasetCorruptError, "cifar10c", "fog.npy", "intact copy"),
    # evaluation
    Case("knn-k-zero", lambda e: knn_accuracy(torch.randn(10, 3), torch.arange(10) % 2, torch.randn(4, 3),
                                              torch.arange(4) % 2, k=0),
         ValueError, "k", "got 0", "an int in [1, 10]"),
    Case("probe-nan-features",
         lambda e: linear_probe(with_entry(torch.randn(10, 3), (4, 2), math.nan), torch.arange(10) % 2,
                                torch.randn(4, 3), torch.arange(4) % 2),
         ValueError, "train_features", "train_features[4, 2] = nan", "must be finite"),
]

CONFIG = [
    Case("config-batch-size-one", lambda e: PretrainConfig(batch_size=1),
         ValueError, "batch_size", "got 1", "an int >= 2"),
    Case("config-unknown-loss", lambda e: PretrainConfig(loss="simclr"),
         ValueError, "loss", "'simclr'", "valid: infonce, hs_ince"),
    Case("config-unknown-arch", lambda e: PretrainConfig(arch="vit"),
         ValueError, "arch", "'vit'", "valid: resnet18, resnet50, small_cnn"),
    Case("config-unknown-augmentation", lambda e: PretrainConfig(augmentation="autoaugment"),
         ValueError, "augmentation", "'autoaugment'", "valid: simclr, large_erase"),
    Case("config-loss-q", lambda e: PretrainConfig(loss="gca_rince", loss_params={"q": 2.0}),
         ValueError, "q", "got 2.0", "in (0, 1]"),
    Case("config-warmup-longer-than-training", lambda e: PretrainConfig(epochs=2, warmup_epochs=3),
         ValueError, "warmup_epochs", "got 3", "at most epochs=2"),
    Case("config-fp16-on-cpu", lambda e: prepare(PretrainConfig(**TINY, device="cpu", precision="fp16")),
         ValueError, "precision", ("'fp16'", "'cpu'"), "needs a CUDA device"),
    Case("batch-larger-than-dataset", lambda e: prepare(PretrainConfig(**{**TINY, "batch_size": 32})),
         ValueError, "batch_size", "batch_size=32", "use batch_size <= 16"),
    Case("unwritable-out-dir", lambda e: prepare(PretrainConfig(**TINY, out_dir=str(blocker(e) / "sub"))),
         ValueError, "out_dir", "file/sub", "a writable directory"),
    Case("target-domain-without-domains", lambda e: prepare(PretrainConfig(**TINY, target="domain")),
         ValueError, "target", "'digits' has none", "needs a dataset with domain labels"),
    Case("incompatible-resume", resume_with_other_lr,
         ValueError, "lr", ("differs in 1 field(s)", "0.002 -> 0.001"), "Resume with the saved config"),
    Case("config-unknown-views", lambda e: PretrainConfig(views="crops"),
         ValueError, "views", "'crops'", "valid: augment, rendered"),
    Case("config-corrupt-pairs-one", lambda e: PretrainConfig(corrupt_pairs=1.0),
         ValueError, "corrupt_pairs", "got 1.0", "a number in [0, 1)"),
    Case("config-corrupt-pairs-string", lambda e: PretrainConfig(corrupt_pairs="0.2"),
         TypeError, "corrupt_pairs", "'0.2' (str)", "a number in [0, 1)"),
    Case("rendered-views-without-renderings", lambda e: prepare(PretrainConfig(**TINY, views="rendered")),
         ValueError, "views='rendered'", "'digits' has none", "needs a dataset with renderings"),
    Case("config-dataset-not-a-dataset", lambda e: PretrainConfig(dataset=5),
         TypeError, "dataset", "got 5 (int)", "or a map-style dataset (len and getitem)"),
    Case("config-dataset-object-without-test-split", lambda e: PretrainConfig(dataset=[(torch.zeros(3, 4, 4), 0)]),
         ValueError, "test_dataset", "got None", "must be given with a dataset object when evaluate=True"),
    Case("config-shard-plan-with-byol", lambda e: PretrainConfig(loss="byol", shard_plan=True),
         ValueError, "shard_plan", "got True", "False with loss='byol'"),
    Case("config-shard-plan-unrolled-gradient",
         lambda e: PretrainConfig(loss="gca_uot", shard_plan=True, loss_params={"grad": "unroll"}),
         ValueError, "grad", "got 'unroll'", "'fused' when shard_plan=True"),
    Case("config-shard-plan-in-loss-params", lambda e: PretrainConfig(loss_params={"shard_plan": True}),
         ValueError, "loss_params", "{'shard_plan': True}", "without a 'shard_plan' key"),
    Case("config-checkpoint-every-steps-negative", lambda e: PretrainConfig(checkpoint_every_steps=-1),
         ValueError, "checkpoint_every_steps", "got -1", "an int >= 0"),
]

CLI = [
    Case("cli-unknown-loss", ["pretrain", "--loss", "simclr", "--out", "{tmp}/o"],
         SystemExit, "--loss", "'simclr'", "choose from 'infonce'"),
    Case("cli-unknown-dataset", ["pretrain", "--dataset", "mnist", "--out", "{tmp}/o"],
         SystemExit, "--dataset", "'mnist'", "choose from 'digits'"),
    Case("cli-unknown-arch", ["pretrain", "--arch", "vit", "--out", "{tmp}/o"],
         SystemExit, "--arch", "'vit'", "choose from 'resnet18'"),
    Case("cli-unknown-augmentation", ["pretrain", "--aug", "autoaugment", "--out", "{tmp}/o"],
         SystemExit, "--aug", "'autoaugment'", "choose from 'simclr'"),
    Case("cli-eps-negative", ["pretrain", "--eps", "-0.5", "--out", "{tmp}/o"],
         SystemExit, "eps", "got -0.5", "> 0"),
    Case("cli-n-iter-not-int", ["pretrain", "--n-iter", "2.5", "--out", "{tmp}/o"],
         SystemExit, "--n-iter", "'2.5'", "invalid int value"),
    Case("cli-q-out-of-range", ["pretrain", "--loss", "gca_rince", "--q", "1.5", "--out", "{tmp}/o"],
         SystemExit, "q", "got 1.5", "in (0, 1]"),
    Case("cli-rho-zero", ["pretrain", "--loss", "gca_uot", "--rho", "0", "--out", "{tmp}/o"],
         SystemExit, "reg_a", "got 0.0", "> 0"),
    Case("cli-batch-larger-than-dataset", [*TINY_FLAGS, "--batch-size", "64", "--out", "{tmp}/o"],
         SystemExit, "batch_size", "batch_size=64", "use batch_size <= 16"),
    Case("cli-unwritable-out-dir", [*TINY_FLAGS, "--out", "{blocked}"],
         SystemExit, "out_dir", "file/sub", "a writable directory"),
    Case("cli-missing-dataset", ["pretrain", "--dataset", "cifar10", "--root", "{tmp}/nodata", "--out", "{tmp}/o"],
         SystemExit, "--root", "nodata/cifar-10-batches-py", "--download"),
    Case("cli-corrupt-dataset", ["pretrain", "--dataset", "cifar10", "--root", "{corrupt}", "--out", "{tmp}/o"],
         SystemExit, "cifar10", "cifar-10-batches-py", "could not be parsed"),
    Case("cli-incompatible-resume", [*TINY_FLAGS, "--lr", "0.001", "--resume", "--out", "{run}"],
         SystemExit, "lr", ("differs in 1 field(s)", "0.002 -> 0.001"), "Resume with the saved config"),
    Case("cli-unknown-views", ["pretrain", "--views", "crops", "--out", "{tmp}/o"],
         SystemExit, "--views", "'crops'", "choose from 'augment', 'rendered'"),
    Case("cli-corrupt-pairs-out-of-range", [*TINY_FLAGS, "--corrupt-pairs", "1.5", "--out", "{tmp}/o"],
         SystemExit, "corrupt_pairs", "got 1.5", "a number in [0, 1)"),
    Case("cli-rendered-views-without-renderings", [*TINY_FLAGS, "--views", "rendered", "--out", "{tmp}/o"],
         SystemExit, "views='rendered'", "'digits' has none", "needs a dataset with renderings"),
    Case("cli-shard-plan-with-byol", [*TINY_FLAGS, "--loss", "byol", "--shard-plan", "--out", "{tmp}/o"],
         SystemExit, "shard_plan", "got True", "False with loss='byol'"),
    Case("cli-checkpoint-every-steps-negative", [*TINY_FLAGS, "--checkpoint-every-steps", "-2", "--out", "{tmp}/o"],
         SystemExit, "checkpoint_every_steps", "got -2", "an int >= 0"),
]

CASES = [*API, *CONFIG, *CLI]


# CLI placeholders whose directory must be made (or a run trained) before the command runs.
PLACEHOLDERS: dict[str, Callable[[Env], Path]] = {
    "{run}": Env.run,
    "{corrupt}": corrupt_cifar10,
    "{blocked}": lambda env: blocker(env) / "sub",
}


def test_the_table_is_large_and_its_names_are_distinct():
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)
    assert all(len(group) >= 10 for group in (API, CONFIG, CLI))


def _cli_argv(case: Case, env: Env) -> list[str]:
    argv = []
    for arg in case.action:
        for key, make in PLACEHOLDERS.items():
            if key in arg:
                arg = arg.replace(key, str(make(env)))
        argv.append(arg.replace("{tmp}", str(env.tmp)))
    return argv


def _message(case: Case, env: Env, capsys) -> str:
    if case.error is SystemExit:
        with pytest.raises(SystemExit) as info:
            main(_cli_argv(case, env))
        assert info.value.code == 2
        return capsys.readouterr().err
    with pytest.raises(case.error) as info:
        case.action(env)
    assert isinstance(info.value, (ValueError, TypeError)), type(info.value)
    return str(info.value)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in CASES])
def test_bad_input_message_names_argument_value_and_expectation(case, tmp_path, capsys, request):
    message = _message(case, Env(tmp_path, request), capsys)
    values = case.value if isinstance(case.value, tuple) else (case.value,)
    for part in (case.argument, *values, case.expected):
        assert part in message, f"{part!r} not in {message!r}"
