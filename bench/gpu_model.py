"""The whole model on a GPU, against the targets of a CUDA box (run by bench/gpu_check.sh).

    python bench/gpu_model.py            # on a CUDA device
    python bench/gpu_model.py --dry      # the same logic on the CPU with tiny sizes (no figures)

1. The 131k architecture (d 256, 16 layers, ps), batch 1, forward + backward at 131,072 bp with
   layer recomputation: time (target <= 10 s) and peak memory (<= 20 GB).
2. One fine-tuning step of the default recipe on that architecture (the top 2 of 16 layers
   trained on the frozen-layer cache, the cache already built, bf16 autocast): 1 kbp, batch 16
   (target <= 50 ms; median of 10 steps after 3 warm-up steps).
3. The depthwise causal conv as the model runs it (channels-last, `layers.CausalConv1d`)
   against F.conv1d on a (b, e, l) copy, forward + backward at (8, 1024, 8192): the peer.
4. LRP on CUDA against LRP on the CPU (the 1k d256 x 4 architecture, 2 x 1,024 bp): maximum
   relative difference (target <= 1e-5) and the conservation error on CUDA.
Each figure is printed with its target and PASS/FAIL and recorded in bench/results/gpu_model.json.
Exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from results import record

from caduceus_lrp.config import architecture_config
from caduceus_lrp.epi_head import CaduceusClassifier
from caduceus_lrp.explanation_model import explain
from caduceus_lrp.layers import CausalConv1d
from caduceus_lrp.model import build_caduceus
from caduceus_lrp.scan import scan_path_reason
from caduceus_lrp.training.frozen_cache import SplitCaduceus
from caduceus_lrp.training.optim import adamw
from caduceus_lrp.training.runtime import autocast

BIG = "caduceus-ps_seqlen-131k_d_model-256_n_layer-16"
SMALL = "caduceus-ps_seqlen-1k_d_model-256_n_layer-4_lr-8e-3"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=1, warmup=0):
    """Median seconds of `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_gb(device):
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def classifier(arch, tasks, device, d_model=None, n_layer=None):
    cfg = architecture_config(arch)
    if d_model:  # the dry run: a tiny model of the same kind
        cfg = type(cfg)(d_model=d_model, n_layer=n_layer, rcps=True, vocab_size=16)
    model = CaduceusClassifier.from_backbone(build_caduceus(cfg).caduceus,
                                             [f"t{k}" for k in range(tasks)], "max")
    return model.to(device)


def long_forward_backward(device, length, tiny):
    model = classifier(BIG, 1, device, *tiny)
    model.caduceus.backbone.gradient_checkpointing = True
    x = F.one_hot(torch.randint(0, 4, (1, length), device=device), 4).float().requires_grad_()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        model(onehot=x).logits.sum().backward()

    return timed(step, device), peak_gb(device)


def finetune_step(device, length, batch, tiny):
    split = SplitCaduceus(classifier(BIG, 6, device, *tiny), 2)
    ids = torch.randint(7, 11, (batch, length), device=device)
    features = split.features(ids)[:, 0]                       # the cache, already built
    labels = torch.randint(0, 2, (batch, 6), device=device).float()
    optimizer = adamw(split.model, 4e-3, 2e-2, 0.1)
    context = autocast(device)

    def step():
        with context:
            logits = split.top(features)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, device, repeats=10, warmup=3)


def conv(device, shape):
    b, e, length = shape
    layer = CausalConv1d(e, e, 4, groups=e, padding=3).to(device)
    x = torch.randn(b, length, e, device=device, requires_grad=True)   # the model's layout
    xt = x.detach().transpose(1, 2).contiguous().requires_grad_()      # the peer's layout

    def ours():
        layer(x).sum().backward()

    def peer():
        F.conv1d(xt, layer.weight, layer.bias, padding=3, groups=e)[..., :length].sum().backward()

    return timed(ours, device, 5, 2), timed(peer, device, 5, 2)


def lrp_cuda_vs_cpu(device, length, tiny):
    model = classifier(SMALL, 2, torch.device("cpu"), *tiny).eval()
    x = F.one_hot(torch.randint(0, 4, (2, length)), 4).float().numpy()
    cpu = explain(model, x, target=1)
    gpu = explain(model, x, target=1, device=device)
    diff = float(abs(gpu.observed - cpu.observed).max() / abs(cpu.observed).max())
    return diff, float(gpu.conservation_error.max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes, no targets")
    args = parser.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        sys.exit("no CUDA device (use --dry on the CPU)")
    device = torch.device("cpu" if args.dry else "cuda")
    tiny = (16, 4) if args.dry else ()
    long_len, ft_len, conv_shape = (512, 128, (2, 64, 256)) if args.dry else \
        (131_072, 1024, (8, 1024, 8192))
    probe = torch.zeros(1, 512, 8, device=device)
    print(f"scan path: {scan_path_reason(probe)}")

    rows, ok = [], True

    def check(name, value, target, unit, passed):
        nonlocal ok
        verdict = "–" if args.dry or target is None else ("PASS" if passed else "FAIL")
        ok &= verdict != "FAIL"
        rows.append([name, value, unit, target, verdict])
        print(f"{name}: {value:.4g} {unit} (target {target}) {verdict}")

    seconds, peak = long_forward_backward(device, long_len, tiny)
    check(f"131k model fwd+bwd, 1 x {long_len:,} bp", seconds, "<= 10", "s", seconds <= 10)
    if peak is not None:
        check(f"131k model fwd+bwd, 1 x {long_len:,} bp, peak", peak, "<= 20", "GB", peak <= 20)
    step = finetune_step(device, ft_len, 16, tiny)
    check(f"fine-tuning step, 16 x {ft_len:,} bp, 2 of 16 layers", step * 1e3, "<= 50", "ms",
          step <= 0.05)
    ours, peer = conv(device, conv_shape)
    check(f"causal conv fwd+bwd {conv_shape}, channels-last", ours * 1e3, None, "ms", True)
    check(f"F.conv1d fwd+bwd {conv_shape} (peer)", peer * 1e3, None, "ms", True)
    diff, conservation = lrp_cuda_vs_cpu(device, 256 if args.dry else 1024, tiny)
    check("LRP CUDA vs CPU, max relative difference", diff, "<= 1e-5", "", diff <= 1e-5)
    check("LRP conservation error on CUDA (relative)", conservation, "<= 1e-6", "",
          conservation <= 1e-6)
    if not args.dry:
        record("gpu_model", "The whole model on a GPU", ["check", "value", "unit", "target",
                                                         "verdict"], rows,
               peer="F.conv1d for the conv; the CPU for LRP", headline=(
                   f"On {torch.cuda.get_device_name(0)}: 131k model forward + backward at "
                   f"131,072 bp in {seconds:.1f} s, a fine-tuning step in {step * 1e3:.0f} ms"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
