"""`python -m caduceus_lrp`: the end-to-end pipeline (see caduceus_lrp/pipeline.py)."""
from caduceus_lrp.pipeline import main

if __name__ == "__main__":
    main()
