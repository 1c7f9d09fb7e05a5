"""caduceus-lrp: fine-tune Caduceus on regulatory genomics data and explain what it relies on.

Importing the package registers Caduceus with the `transformers` Auto classes (model type
"caduceus"), so `AutoModelForMaskedLM.from_pretrained(folder)` loads an official checkpoint
without remote code.
"""
from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM,
                          AutoModelForSequenceClassification)

from .checkpoint import load_finetuned, load_model
from .config import ARCHITECTURES, CaduceusConfig, architecture_config
from .epi_head import CaduceusClassifier
from .explanation_model import METHODS, explain
from .lrp_composites import COMPOSITES, Composite, Rule, lrp_mode
from .model import Caduceus, CaduceusForMaskedLM, build_caduceus, load_caduceus

AutoConfig.register("caduceus", CaduceusConfig, exist_ok=True)
AutoModel.register(CaduceusConfig, Caduceus, exist_ok=True)
AutoModelForMaskedLM.register(CaduceusConfig, CaduceusForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(CaduceusConfig, CaduceusClassifier, exist_ok=True)

__all__ = ["ARCHITECTURES", "CaduceusConfig", "architecture_config", "Caduceus",
           "CaduceusClassifier", "CaduceusForMaskedLM", "COMPOSITES", "Composite", "METHODS",
           "Rule", "build_caduceus", "explain", "load_caduceus", "load_finetuned", "load_model",
           "lrp_mode"]
