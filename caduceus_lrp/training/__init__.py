"""Fine-tuning: the config, the loop, where it runs, the frozen-layer cache, losses, replicates and
masked-LM pretraining. `run_training(TrainConfig(...)) -> metrics` is the library entry."""
from .config import MODELS, TrainConfig
from .run import run_training

__all__ = ["MODELS", "TrainConfig", "run_training"]
