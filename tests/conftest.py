"""Shared fixtures: paths to the official reference checkpoints, tiny model configurations."""
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "caduceus_official"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["tiny_ps", "tiny_ph"])
def official(request):
    """(folder, reference arrays) of an official Caduceus fixture."""
    import numpy as np

    folder = FIXTURES / request.param
    if not folder.exists():
        pytest.fail(f"missing reference fixture {folder}")
    return folder, dict(np.load(folder / "reference.npz", allow_pickle=False))


def tiny_config(rcps=True, d_model=16, n_layer=2, **kw):
    from caduceus_lrp import CaduceusConfig

    return CaduceusConfig(d_model=d_model, n_layer=n_layer, rcps=rcps, vocab_size=16, **kw)


def perturbed_model(cfg, seed=0, dtype=torch.float64):
    """A random model whose norms, D and A_log are perturbed, so flips and swaps matter."""
    from caduceus_lrp import build_caduceus

    model = build_caduceus(cfg, seed=seed).to(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D", "A_log")):
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model.eval()
