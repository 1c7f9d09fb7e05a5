"""Where training runs: the device, torch.distributed under torchrun, CPU threads, autocast.

Under torchrun (WORLD_SIZE > 1) each process is a rank: NCCL on CUDA, gloo on CPU. Without it
every function here behaves as for one process.
"""
from __future__ import annotations

import contextlib
import gc
import os

import numpy as np
import torch
import torch.distributed as dist

from ..errors import InputError

__all__ = ["rank_world", "torchrun_world", "cores_each", "resolve_device", "distributed",
           "cpu_threads", "autocast", "all_sum", "gather_rows"]


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def torchrun_world() -> int:
    """Processes of this torchrun job (WORLD_SIZE; 1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def cores_each(processes: int) -> int:
    """CPU cores per process when `processes` processes share this machine (at least 1)."""
    return max(1, (os.cpu_count() or 1) // processes)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; under torchrun "cuda" is this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: {name!r} is not a device (cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device: {name} requested but no CUDA device is available")
    if device.type == "cuda" and device.index is None and dist.is_initialized():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


@contextlib.contextmanager
def distributed(device_name: str):
    """Initialise torch.distributed under torchrun (WORLD_SIZE > 1): NCCL for CUDA, gloo for CPU;
    on the way out the caller has dropped its DDP model, then the group is destroyed."""
    started = torchrun_world() > 1 and not dist.is_initialized()
    if started:
        cuda = device_name != "cpu" and torch.cuda.is_available()
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        if started:
            gc.collect()
            dist.destroy_process_group()


@contextlib.contextmanager
def cpu_threads(threads: int):
    """Run with `threads` torch and numba threads (0: all cores, shared between the torchrun
    ranks of this node); the previous counts are restored on the way out."""
    import numba

    before = torch.get_num_threads(), numba.get_num_threads()
    if threads == 0:
        threads = cores_each(int(os.environ.get("LOCAL_WORLD_SIZE", torchrun_world())))
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def autocast(device: torch.device):
    """bf16 autocast on CUDA, plain fp32 elsewhere."""
    return (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
            else contextlib.nullcontext())


def all_sum(values: list[float], device) -> list[float]:
    """Sum of a short list of floats over ranks (identity without DDP)."""
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Each rank holds rows rank::world of an (n, t) array; return the whole array, in order."""
    rank, world = rank_world()
    if world == 1:
        return rows
    parts = [None] * world
    dist.all_gather_object(parts, rows)
    out = np.empty((n, rows.shape[1]), dtype=rows.dtype)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out
