"""Helpers the test modules share: tiny models, one-hot inputs, checkpoints, planted attributions."""
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "caduceus_official"
DT = torch.float64
CTCF, GATA1, TAL1_TCF3, SPI1, CEBPB = "MA0139.2", "MA0035.5", "MA0091.2", "MA0080.7", "MA0466.4"


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=gen(seed), dtype=DT)


def tiny_config(rcps=True, d_model=16, n_layer=2, **kw):
    from caduceus_lrp import CaduceusConfig

    return CaduceusConfig(d_model=d_model, n_layer=n_layer, rcps=rcps, vocab_size=16, **kw)


def perturbed_model(cfg, seed=0, dtype=torch.float64):
    """A random masked-LM model whose norms, D and A_log are perturbed, so flips and swaps matter."""
    from caduceus_lrp import build_caduceus

    model = build_caduceus(cfg, seed=seed).to(dtype)
    g = gen(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D", "A_log")):
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.eval()


def classifier(rcps=True, seed=0, n_tasks=3, pooling="mean", dtype=DT, d_model=16,
               task_names=None):
    """A tiny classifier with a perturbed backbone and a non-trivial head (bias included)."""
    from caduceus_lrp.epi_head import CaduceusClassifier

    cfg = tiny_config(rcps=rcps, d_model=d_model)
    names = task_names or [f"task{k}" for k in range(n_tasks)]
    backbone = perturbed_model(cfg, seed=seed, dtype=dtype).caduceus
    model = CaduceusClassifier.from_backbone(backbone, names, pooling)
    with torch.no_grad():
        model.head.linear.weight.copy_(randn(*model.head.linear.weight.shape, seed=seed + 2))
        model.head.linear.bias.copy_(randn(len(names), seed=seed + 3))
    return model.to(dtype).eval()


def onehot(b=4, l=24, seed=0, dtype=DT):
    return F.one_hot(torch.randint(0, 4, (b, l), generator=gen(seed)), 4).to(dtype)


def make_checkpoint(path, cache, seq_len=200, n_synthetic=200, d_model=16):
    """A fine-tuned-looking checkpoint of a tiny float32 classifier for the embedded tasks, whose
    recorded data config is a small embedded dataset in `cache`."""
    from caduceus_lrp.checkpoint import save_finetuned
    from caduceus_lrp.data.synthetic import TASKS

    model = classifier(rcps=True, task_names=TASKS, dtype=torch.float32, d_model=d_model)
    data = {"seq_len": seq_len, "n_synthetic": n_synthetic, "cache_dir": str(cache)}
    save_finetuned(path, model, extra={"config": {"data": data}})
    return path


def planted_attributions(motif_ids, n, length=200, noise=0.05, decoy=None, seed=0):
    """Synthetic (one-hot, hypothetical) (n, length, 4): uniform random DNA with one site of each
    JASPAR motif per sequence, sampled from its PPM on a random strand, each in its own segment
    of the sequence. Hypothetical scores: the motif's log-odds at its site plus N(0, noise)
    everywhere; a `decoy` motif is planted in the sequence only (no attribution)."""
    from caduceus_lrp.data.synthetic import jaspar_ppm

    rng = np.random.default_rng(seed)
    seq = rng.integers(0, 4, (n, length))
    hyp = rng.normal(0.0, noise, (n, length, 4))
    planted = [(m, True) for m in motif_ids] + ([(decoy, False)] if decoy else [])
    segment = length // len(planted)
    for k, (motif_id, scored) in enumerate(planted):
        ppm = jaspar_ppm(motif_id)
        w = len(ppm)
        log_odds = np.log2((ppm + 0.01) / 0.26)
        for i in range(n):
            s = k * segment + rng.integers(0, segment - w + 1)
            site = np.minimum((rng.random((w, 1)) > ppm.cumsum(axis=1)).sum(axis=1), 3)  # (w,)
            rc = rng.random() < 0.5
            seq[i, s:s + w] = 3 - site[::-1] if rc else site
            if scored:
                hyp[i, s:s + w] += log_odds[::-1, ::-1] if rc else log_odds
    return np.eye(4, dtype=np.float32)[seq], hyp.astype(np.float32)
