"""LRP (or --method) attributions of a split's positive sequences, per task, saved as the ohe.npz /
hyp.npz pairs `modisco motifs` reads, with plots/conservation.png (relevance sums against the
logit) and plots/dist_attribution.png (relevance at planted-motif positions against background,
per method, when the planted sites are known). The same as `caduceus-lrp attribute`.

    python examples/viz_interpret.py
    python examples/viz_interpret.py --method corrected --compare saliency corrected lrp ism
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp.commands import attribute_main  # noqa: E402


def main(argv=None):
    return attribute_main(argv, prog="viz_interpret.py")


if __name__ == "__main__":
    sys.exit(main())
