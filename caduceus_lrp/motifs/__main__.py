"""`python -m caduceus_lrp.motifs`: the same as `caduceus-lrp motifs`."""
import sys

from ..commands import main

if __name__ == "__main__":
    sys.exit(main(["motifs", *sys.argv[1:]]))
