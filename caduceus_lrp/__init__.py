"""caduceus-lrp: fine-tune Caduceus on regulatory genomics data and explain what it relies on."""
from .config import ARCHITECTURES, CaduceusConfig, architecture_config
from .model import Caduceus, CaduceusForMaskedLM, build_caduceus, load_caduceus

__all__ = ["ARCHITECTURES", "CaduceusConfig", "architecture_config", "Caduceus",
           "CaduceusForMaskedLM", "build_caduceus", "load_caduceus"]
