"""caduceus-lrp: fine-tune Caduceus on regulatory genomics data and explain what it relies on."""
from .config import ARCHITECTURES, CaduceusConfig, architecture_config
from .epi_head import CaduceusClassifier, load_finetuned
from .explanation_model import METHODS, explain
from .model import Caduceus, CaduceusForMaskedLM, build_caduceus, load_caduceus

__all__ = ["ARCHITECTURES", "CaduceusConfig", "architecture_config", "Caduceus",
           "CaduceusClassifier", "CaduceusForMaskedLM", "METHODS", "build_caduceus", "explain",
           "load_caduceus", "load_finetuned"]
