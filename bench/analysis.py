"""Cost of the causal analyses per 1,000 sequences against the forward pass (the peer), and the
project's own compositions against tangermeme's functions on the same inputs.

Run: python bench/analysis.py [--model final_models/best_model.pt] [--n 256] [--motifs 4]
     [--lrp-variants 32] [--ism-sequences 1] [--threads 2]

On one trained model, same process: a batched forward pass over --n dinucleotide-shuffled
backgrounds; marginalization of --motifs motifs (the backgrounds' logits computed once, then
one pass per motif) against tangermeme.marginalize called per motif (which computes the
backgrounds again each time), with the largest difference of their effects; variant effects
(tangermeme substitution_effect: ref and alt passes) on --n variants, and with the LRP
attribution difference on --lrp-variants; the project's ISM (explain(method="ism")) against
tangermeme.saturation_mutagenesis (fast=False) on --ism-sequences sequences, with the largest
difference of their centred effects. Times are the best of --repeats, scaled to 1,000 sequences
(per motif for marginalization, per variant for variants, per ISM sequence for ISM).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from results import best_time, record

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "final_models" / "best_model.pt"))
    parser.add_argument("--n", type=int, default=256, help="backgrounds and variants")
    parser.add_argument("--motifs", type=int, default=4)
    parser.add_argument("--lrp-variants", type=int, default=32)
    parser.add_argument("--ism-sequences", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tangermeme.marginalize import marginalize as tg_marginalize
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    from caduceus_lrp.analysis import (Motif, TangermemeModel, Variants, backgrounds,
                                       load_inputs, marginalize, predict_logits, to_ncl,
                                       variant_effects)
    from caduceus_lrp.analysis.marginalize import insertion_start
    from caduceus_lrp.explanation_model import explain
    from caduceus_lrp.sequence import BASES

    model, dataset, _, _ = load_inputs(args.model)
    x = backgrounds(dataset, "shuffle", args.n, seed=0, both_strands=False)
    n, bs, per = len(x), args.batch_size, 1000 / len(x)
    predict_logits(model, x[:8], bs)  # warm-up (numba scan kernels)
    forward_s, _ = best_time(lambda: predict_logits(model, x, bs), args.repeats)

    rng = np.random.default_rng(0)
    motifs = [Motif(f"m{k}", "sequence", "".join(rng.choice(list(BASES), 10)))
              for k in range(args.motifs)]
    ours_s, table = best_time(lambda: marginalize(model, motifs, x, bs), args.repeats)
    wrapped, X = TangermemeModel(model), to_ncl(x)

    def tangermeme_all():
        out = []
        for m in motifs:
            r = tg_marginalize(wrapped, X, m.sequence, start=insertion_start(x.shape[1], m.width),
                               batch_size=bs, device="cpu")
            out.append((r.y_after.double() - r.y_before.double()).mean(0).numpy())
        return np.stack(out)
    theirs_s, theirs = best_time(tangermeme_all, args.repeats)
    ours = table.pivot(index="motif", columns="task", values="effect").loc[
        [m.name for m in motifs], list(dict.fromkeys(table["task"]))].to_numpy()
    marg_diff = float(np.abs(ours - theirs).max())

    positions = rng.integers(0, x.shape[1], n)
    refs = [BASES[int(x[i, p].argmax())] for i, p in enumerate(positions)]
    alts = [BASES[(BASES.index(r) + 1) % 4] for r in refs]
    variants = Variants([f"v{i}" for i in range(n)], positions, refs, alts, x)
    var_s, _ = best_time(lambda: variant_effects(model, variants, "none", batch_size=bs),
                         args.repeats)
    k = min(args.lrp_variants, n)
    few = Variants(variants.ids[:k], positions[:k], refs[:k], alts[:k], x[:k])
    lrp_method = "lrp" if type(model).__name__ == "CaduceusClassifier" else "grad_x_input"
    var_lrp_s, _ = best_time(lambda: variant_effects(model, few, lrp_method, batch_size=bs),
                             args.repeats)

    m = args.ism_sequences
    ours_ism_s, ours_ism = best_time(lambda: explain(model, x[:m], target=0, method="ism",
                                                     batch_size=bs), 1)
    tg_ism_s, tg_ism = best_time(lambda: saturation_mutagenesis(
        wrapped, X[:m], batch_size=bs, raw_outputs=True, fast=False, device="cpu"), 1)
    effects = (tg_ism.y_hat.double()[..., 0] - tg_ism.y0.double()[:, None, None, 0]).numpy()
    effects = effects.transpose(0, 2, 1)  # (m, L, 4)
    effects -= effects.mean(-1, keepdims=True)
    ism_diff = float(np.abs(effects - ours_ism.hypothetical).max())

    def row(name, seconds, scale, note=""):
        per_1000 = seconds * scale
        return [name, round(per_1000, 2), round(per_1000 / (forward_s * per), 2), note]
    rows = [row("forward pass (peer)", forward_s, per, f"{n} sequences"),
            row("marginalization, per motif (ours: backgrounds once)", ours_s / args.motifs,
                per, f"{args.motifs} motifs; effects equal to tangermeme's within "
                     f"{marg_diff:.1e}"),
            row("marginalization, per motif (tangermeme.marginalize)", theirs_s / args.motifs,
                per),
            row("variants, logits (tangermeme substitution_effect)", var_s, per,
                f"{n} variants"),
            row(f"variants, logits + {lrp_method} difference", var_lrp_s, 1000 / k,
                f"{k} variants"),
            row("ISM, per sequence (ours: explain method ism)", ours_ism_s, 1000 / m,
                f"{m} x {x.shape[1]} bp; centred effects equal within {ism_diff:.1e}"),
            row("ISM, per sequence (tangermeme saturation_mutagenesis)", tg_ism_s, 1000 / m)]
    record("analysis", "Cost of the causal analyses per 1,000 sequences",
           ["analysis", "seconds per 1,000", "forward passes", "notes"], rows,
           peer="a batched no-grad forward pass over the same backgrounds, same process",
           notes=f"Model {Path(args.model).name} ({type(model).__name__}), {x.shape[1]} bp, "
                 f"batch {bs}, {args.threads} threads, best of {args.repeats}. 'forward passes' "
                 "is the cost over the forward pass of as many sequences.",
           headline=f"Marginalization costs {ours_s / args.motifs / forward_s:.1f} forward "
                    f"passes per motif ({theirs_s / ours_s:.1f}x faster than calling "
                    "tangermeme.marginalize per motif); variant effects "
                    f"{var_s / forward_s:.1f} forward passes per variant")
    if marg_diff > 1e-4 or ism_diff > 1e-3:
        sys.exit(f"outputs differ: marginalization {marg_diff:.2e}, ISM {ism_diff:.2e}")


if __name__ == "__main__":
    main()
