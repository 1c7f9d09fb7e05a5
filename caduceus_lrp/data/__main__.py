"""`python -m caduceus_lrp.data`: the same as `caduceus-lrp data` (load a dataset, print a summary)."""
import sys

from ..commands import main

if __name__ == "__main__":
    sys.exit(main(["data", *sys.argv[1:]]))
