"""`python -m caduceus_lrp [options]`: the whole pipeline (the same as `caduceus-lrp pipeline`)."""
import sys

from caduceus_lrp.commands import pipeline_main

if __name__ == "__main__":
    sys.exit(pipeline_main())
