#!/usr/bin/env bash
# Prepared checks for a CUDA machine (one GPU; about 8 minutes at most on an H200):
#   1. the CUDA tests (pytest -k cuda),
#   2. the loss benchmark on cuda (fused vs NT-Xent, unrolled and dense references),
#   3. backward memory for n_iter 10 vs 100 (torch.cuda.max_memory_allocated),
#   4. one ResNet-18 training step, GCA-UOT vs InfoNCE,
#   5. timed epochs of ResNet-18 pretraining on CIFAR-10-sized synthetic uint8 data held on the GPU
#      (batch 512, two views, bf16 autocast, channels_last), torch.compile off and on: prints s/epoch.
# Every step is timed and bounded by `timeout`; a failing step is reported and the script goes on,
# exiting non-zero at the end if any step failed. Run from anywhere: bash benchmarks/gpu_check.sh
# Environment: PY (python to use; default .venv/bin/python, else python3), EPOCHS (timed epochs, 2).
set -euo pipefail

cd "$(dirname "$0")/.."
export PYTHONPATH="${PWD}${PYTHONPATH:+:${PYTHONPATH}}"
if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
EPOCHS=${EPOCHS:-2}
FAILED=()
SCRIPT_START=$(date +%s%N)

seconds_since() {  # seconds_since START_NS
  local elapsed=$(( $(date +%s%N) - $1 ))
  printf '%d.%03d' $(( elapsed / 1000000000 )) $(( elapsed / 1000000 % 1000 ))
}

step() {  # step NAME TIMEOUT_S COMMAND...: run, time, record a failure without stopping
  local name=$1 limit=$2
  shift 2
  local start status=0
  start=$(date +%s%N)
  echo
  echo "=== ${name} (limit ${limit} s)"
  timeout --signal=INT --kill-after=10 "${limit}" "$@" || status=$?
  echo "=== ${name}: $(seconds_since "${start}") s, exit ${status}"
  if [[ ${status} -ne 0 ]]; then FAILED+=("${name} (exit ${status})"); fi
}

EPOCH_PY=$(mktemp --suffix=.py)
trap 'rm -f "${EPOCH_PY}"' EXIT
cat > "${EPOCH_PY}" <<'PYTHON'
"""ResNet-18 pretraining epochs on synthetic CIFAR-10-sized uint8 data held on the GPU: argv = on|off, epochs."""
import statistics
import sys
import time

import torch
from torch import nn

compile_model, timed_epochs = sys.argv[1] == "on", int(sys.argv[2])
device = torch.device("cuda")
torch.manual_seed(0)
torch.backends.cudnn.benchmark = True
torch.backends.cudnn.allow_tf32 = True
images, batch, views = 50_000, 512, 2
mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
data = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, device=device)

try:
    from gcalib.batch_augment import BatchAugment

    augment = BatchAugment("simclr", 32, mean, std).to(device)
    make_views = lambda x: augment.multi_view(x, views)
    augmentation = "gcalib.batch_augment simclr"
except ImportError:
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def make_views(x):  # minimal stand-in: random 4-pixel-padded crop and flip per sample
        x = x.repeat(views, 1, 1, 1).float().div_(255)
        n = x.shape[0]
        padded = nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
        dy, dx = torch.randint(0, 9, (2, n), device=device)
        rows = (dy.view(n, 1) + torch.arange(32, device=device)).view(n, 1, 32, 1).expand(n, 3, 32, 40)
        x = padded.gather(2, rows)
        cols = (dx.view(n, 1) + torch.arange(32, device=device)).view(n, 1, 1, 32).expand(n, 3, 32, 32)
        x = x.gather(3, cols)
        x = torch.where(torch.rand(n, 1, 1, 1, device=device) < 0.5, x.flip(3), x)
        return (x - mean_t) / std_t
    augmentation = "crop+flip stand-in (gcalib.batch_augment missing)"

try:
    from gcalib.models import Projector, make_encoder

    encoder = make_encoder("resnet18")
    head = Projector(encoder.feature_dim)
except ImportError:
    import torchvision

    encoder = torchvision.models.resnet18(weights=None)
    encoder.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    encoder.maxpool, encoder.fc = nn.Identity(), nn.Identity()
    head = nn.Sequential(nn.Linear(512, 2048, bias=False), nn.BatchNorm1d(2048), nn.ReLU(inplace=True), nn.Linear(2048, 128))
from gcalib.losses import make_loss

model = nn.Sequential(encoder, head).to(device, memory_format=torch.channels_last)
forward = torch.compile(model) if compile_model else model
loss_fn = make_loss("gca_uot")
optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)


def epoch() -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    order = torch.randperm(images, device=device)
    for i in range(images // batch):
        x = make_views(data[order[i * batch:(i + 1) * batch]]).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            h = forward(x)
        loss = loss_fn(*h.float().chunk(views))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    if not torch.isfinite(loss):
        raise SystemExit(f"non-finite loss {float(loss)}")
    return time.perf_counter() - start


print(f"{torch.cuda.get_device_name()}: ResNet-18, {images} uint8 32x32 images on the GPU, batch {batch} x {views} views, "
      f"bf16 autocast, channels_last, loss gca_uot, augmentation {augmentation}, compile {'on' if compile_model else 'off'}")
print(f"warm-up epoch (cudnn autotune{', compilation' if compile_model else ''}): {epoch():.2f} s", flush=True)
times = []
for index in range(timed_epochs):
    times.append(epoch())
    print(f"epoch {index + 1}: {times[-1]:.2f} s/epoch", flush=True)
print(f"RESULT compile={'on' if compile_model else 'off'}: median {statistics.median(times):.2f} s/epoch "
      f"(target <= 6 s/epoch on an H200), peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
PYTHON

echo "python: ${PY}"
"${PY}" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.__version__, torch.cuda.get_device_name())"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv; fi
mapfile -t CUDA_TEST_FILES < <(grep -l "def test_[a-z0-9_]*cuda" tests/*.py tests/*/*.py || true)
echo "test files with CUDA tests: ${CUDA_TEST_FILES[*]:-none}"

if [[ ${#CUDA_TEST_FILES[@]} -gt 0 ]]; then
  step "CUDA tests" 60 "${PY}" -m pytest -q -p no:cacheprovider -rs -k cuda "${CUDA_TEST_FILES[@]}"
fi
step "loss benchmark (cuda)" 100 "${PY}" -m benchmarks.bench_losses --device cuda --sizes 1024,4096,8192 \
  --dense-sizes 1024 --unroll-sizes 1024,4096 --repeats 10
step "backward memory (cuda)" 40 "${PY}" -m benchmarks.bench_memory --device cuda --n 8192 --unroll-n 2048
step "training step ResNet-18 (cuda)" 40 "${PY}" -m benchmarks.bench_train_step --device cuda --arch resnet18 \
  --batch 512 --repeats 10
step "ResNet-18 epochs, compile off" 80 "${PY}" "${EPOCH_PY}" off "${EPOCHS}"
step "ResNet-18 epochs, compile on" 140 "${PY}" "${EPOCH_PY}" on "${EPOCHS}"

echo
echo "=== total $(seconds_since "${SCRIPT_START}") s"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  printf 'FAILED: %s\n' "${FAILED[@]}"
  exit 1
fi
echo "all steps passed"
