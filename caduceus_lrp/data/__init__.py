"""Datasets: the container at the bottom, a reader per input format above it, and the embedded dataset.

`load_dataset(DataConfig(...))` reads tables, FASTA + labels, BED/narrowPeak + genome, HDF5 (or
builds the embedded dataset) into a `SequenceDataset`; `read_ground_truth` reads which motifs
(and where) a dataset's positives carry. `python -m caduceus_lrp.data` prints a summary.
"""
from .config import DataConfig
from .dataset import SPLITS, SequenceDataset
from .ground_truth import GroundTruth, read_ground_truth
from .loading import embedded_dataset, embedded_ground_truth, ground_truth_for, load_dataset

__all__ = ["SPLITS", "SequenceDataset", "DataConfig", "GroundTruth", "read_ground_truth",
           "load_dataset", "embedded_dataset", "embedded_ground_truth", "ground_truth_for"]

