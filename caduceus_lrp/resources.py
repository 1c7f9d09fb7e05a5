"""Files shipped inside the package (found with importlib.resources, so they work from any install)
and the per-user cache folder."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["demo_backbone", "cache_dir"]


def demo_backbone() -> Path:
    """The folder of the demo backbone (config.json, model.safetensors, pretrain_config.json): a
    small ps Caduceus pretrained by masked-language modelling on the embedded dataset."""
    return Path(str(resources.files("caduceus_lrp") / "assets" / "demo_backbone"))


def cache_dir() -> Path:
    """Where built datasets and the JASPAR export are kept: $CADUCEUS_LRP_CACHE, else
    ~/.cache/caduceus_lrp."""
    return Path(os.environ.get("CADUCEUS_LRP_CACHE", Path.home() / ".cache" / "caduceus_lrp"))
