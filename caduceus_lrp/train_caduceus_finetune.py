"""Fine-tuning from the command line: `python caduceus_lrp/train_caduceus_finetune.py [--flags]`
(also under torchrun). The same as `caduceus-lrp train`.

Every field of TrainConfig and DataConfig is a flag; `--config file.yaml|json` sets fields first
(a file written as train_config.yaml by an earlier run works), explicit flags win. With no
arguments: fine-tune the demo backbone on the embedded dataset into final_models/ and plots/.
"""
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package, not this folder's modules
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from caduceus_lrp.commands import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
