"""Shared fixtures: the official reference checkpoints, GPU tests skipped without a GPU."""
import numpy as np
import pytest
import torch
from helpers import FIXTURES


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
    folder = FIXTURES / request.param
    if not folder.exists():
        pytest.fail(f"missing reference fixture {folder}")
    return folder, dict(np.load(folder / "reference.npz", allow_pickle=False))
