#!/usr/bin/env bash
# GPU check for a lent GPU machine (no network): run from the repository root as
#     bash bench/gpu_check.sh
# 1. installs only what the checkout carries, never from an index: the wheels in $WHEELS (default:
#    the first of .whl/, wheels/, shared/wheels/ that holds any; mamba-ssm / causal-conv1d
#    when built for that machine, mambapy for the CPU table), into a target folder;
# 2. runs the GPU diagnostic caduceus_lrp/test_gpu.py (scan, model forward, LRP on CUDA vs CPU);
# 3. compares the CUDA scan path (mamba-ssm's kernel when importable, else the PyTorch path on
#    CUDA) with the float64 CPU reference: outputs and the gradients of all 8 inputs;
# 4. prints forward + backward throughput of the CUDA path and of the fused CPU scan on this
#    machine's cores, then runs bench/scan.py (the CPU table) there.
# Each step has a time limit; the whole script is sized to finish within 8 minutes.
# Exit status: the number of failed steps.
set -u
cd "$(dirname "$0")/.."
failed=0
PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba_cache}

step() {  # step <seconds> <title> <command...>
    local limit=$1 title=$2
    shift 2
    echo "=== $title"
    local start=$SECONDS
    timeout "$limit" "$@"
    local status=$?
    echo "=== $title: exit status $status, $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || failed=$((failed + 1))
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"

for dir in "${WHEELS:-}" .whl wheels shared/wheels; do
    if [ -n "$dir" ] && compgen -G "$dir/*.whl" > /dev/null; then
        "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target /tmp/site "$dir"/*.whl \
            && export PYTHONPATH="$PYTHONPATH:/tmp/site" && echo "installed:" "$dir"/*.whl
        break
    fi
done

step 200 "GPU diagnostic (caduceus_lrp/test_gpu.py)" "$PYTHON" caduceus_lrp/test_gpu.py

step 150 "CUDA scan vs the float64 reference, gradients, throughput" "$PYTHON" - <<'EOF'
import sys
import time

import torch

from caduceus_lrp.scan import scan_path, selective_scan, selective_scan_ref
from caduceus_lrp.scan_cpu import selective_scan_cpu

if not torch.cuda.is_available():
    sys.exit("no CUDA device")
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def inputs(b, d, n, l, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    t = dict(u=r(b, d, l), delta=0.5 * r(b, d, l) - 1, A=-torch.exp(0.5 * r(d, n)), B=r(b, n, l),
             C=r(b, n, l), D=r(d), z=r(b, d, l), delta_bias=0.1 * r(d))
    return {k: v.to(device, dtype).requires_grad_() for k, v in t.items()}


def forward_backward(scan, x, grad):
    out = scan(**x, delta_softplus=True)
    return [out] + list(torch.autograd.grad(out, [x[k] for k in NAMES], grad))


x = inputs(2, 64, 16, 777, "cuda")
grad = torch.randn(2, 64, 777, generator=torch.Generator().manual_seed(1)).cuda()
got = forward_backward(selective_scan, x, grad)
ref = forward_backward(selective_scan_ref,
                       {k: v.detach().cpu().double().requires_grad_() for k, v in x.items()},
                       grad.cpu().double())
worst = 0.0
for name, a, b in zip(("out",) + NAMES, got, ref):
    err = ((a.double().cpu() - b).abs().max() / b.abs().max()).item()
    worst = max(worst, err)
    print(f"  {name:<10} max relative error {err:.2e}")
print(f"path {scan_path(x['u'])}: worst {worst:.2e} ({'ok' if worst < 2e-3 else 'FAILED'})")

print("forward + backward, b=8 d=512 n=16 float32, softplus, D, z, delta_bias:")
for l in (1024, 8192):
    for device, scan in (("cuda", selective_scan), ("cpu", selective_scan_cpu)):
        x = inputs(8, 512, 16, l, device)
        grad = torch.ones(8, 512, l, device=device)
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            start = time.perf_counter()
            forward_backward(scan, x, grad)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        name = scan_path(x["u"]) if device == "cuda" else f"cpu_fused, {torch.get_num_threads()} threads"
        print(f"  l={l:>5} {name:<32} {min(times[1:]):8.4f} s  "
              f"{8 * l / min(times[1:]) / 1e6:8.2f} M positions/s")
sys.exit(0 if worst < 2e-3 else 1)
EOF

step 200 "CPU scan benchmark on this machine (bench/scan.py)" "$PYTHON" bench/scan.py --repeats 2

echo "gpu_check: $failed step(s) failed"
exit "$failed"
