"""The frozen part of a fine-tuned model and the cache of its outputs, computed once per data and weights.

Glossary: N sequences, b batch, S strands (1 for ps and the CNN, 2 for ph: forward and reverse
complement), l length, c feature width (the backbone's hidden size).

A Caduceus block only needs the sum s = h + residual of the previous one, so the frozen embedding
and lower layers are summarised by one tensor s (b, l, c) per strand. `SplitCaduceus` is the
classifier cut there: `features(ids)` (no gradient) and `top(s)` (the unfrozen layers, the final
norm and the head). `FrozenCache` runs `features` over a whole data set once and keeps the result in
a compact dtype, in memory or in a .npy memmap under `cache_dir` whose name is a hash of the tokens,
the frozen weights and the cut: other data or other weights get another file.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from ..epi_head import CaduceusClassifier
from ..errors import InputError
from ..io_utils import atomic_path
from .runtime import rank_world

__all__ = ["SplitCaduceus", "FrozenCache", "CACHE_DTYPES"]

CACHE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class SplitCaduceus(nn.Module):
    """A CaduceusClassifier with its embedding and all but the top `unfreeze_layers` layers frozen
    (requires_grad False); the final norm and the head always train."""

    def __init__(self, classifier: CaduceusClassifier, unfreeze_layers: int):
        super().__init__()
        n_layer = classifier.config.n_layer
        if not 0 <= unfreeze_layers <= n_layer:
            raise InputError(f"--unfreeze-layers: {unfreeze_layers} is not between 0 and the "
                             f"backbone's {n_layer} layers")
        self.model = classifier
        self.n_frozen = n_layer - unfreeze_layers
        self.n_strands = 1 if classifier.config.rcps else 2
        mixer = classifier.caduceus.backbone
        mixer.embeddings.requires_grad_(False)
        for layer in mixer.layers[:self.n_frozen]:
            layer.requires_grad_(False)

    @property
    def _mixer(self):
        return self.model.caduceus.backbone

    def frozen_modules(self) -> list[nn.Module]:
        """The frozen embedding and lower layers, in order."""
        return [self._mixer.embeddings, *self._mixer.layers[:self.n_frozen]]

    @torch.no_grad()
    def features(self, input_ids):
        """Token ids (b, l) -> s = h + residual after the frozen layers, (b, S, l, c), float32;
        the second strand (ph) is the reverse complement."""
        strands = [input_ids]
        if self.n_strands == 2:
            comp = torch.as_tensor(self.model.config.complement, device=input_ids.device)
            strands.append(comp[input_ids].flip(-1))
        out = []
        for ids in strands:
            h, residual, _ = self._mixer.run_layers(self._mixer.embeddings(ids), None,
                                                    layers=self._mixer.layers[:self.n_frozen])
            out.append(h.float() if residual is None else h.float() + residual.float())
        return torch.stack(out, dim=1)

    def top(self, s):
        """s (b, l, c) of one strand -> logits (b, t): the unfrozen layers, final norm, head."""
        mixer = self._mixer
        h, residual, _ = mixer.run_layers(s, None, layers=mixer.layers[self.n_frozen:])
        return self.model.head_logits(mixer.final_norm(h, residual))


def _cache_key(model: nn.Module, tokens: np.ndarray, dtype: str) -> str:
    """sha256 of the tokens, the frozen modules' state and the model's class and cut."""
    digest = hashlib.sha256()
    digest.update(f"{type(model).__name__}|{getattr(model, 'n_frozen', 0)}|{model.n_strands}|"
                  f"{dtype}|{tokens.shape}".encode())
    digest.update(np.ascontiguousarray(tokens).tobytes())
    for module in getattr(model, "frozen_modules", list)():
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


GPU_RESIDENT_FRACTION = 0.5  # the cache moves to the GPU when it takes at most this share of
# the GPU's free memory


class FrozenCache:
    """`model.features` of every sequence of `tokens` (N, l), computed once: (N, S, l, c).

    With torch.distributed initialised, each rank computes a share and the shares are gathered.
    `cache_dir` keeps the result as `frozen_<hash>.npy` (read back as a memmap on the next run).
    On a CUDA device the cache lives on the GPU when it fits (GPU_RESIDENT_FRACTION of the free
    memory); otherwise each batch is gathered into pinned host memory and copied without
    blocking, and the cast to float32 happens on the GPU. `location` says which.
    """

    def __init__(self, model: nn.Module, tokens: np.ndarray, batch_size: int, device,
                 dtype: str = "float16", cache_dir=None, show_progress: bool = True):
        if dtype not in CACHE_DTYPES:
            raise InputError(f"--cache-dtype: {dtype!r} is not one of {', '.join(CACHE_DTYPES)}")
        self.device = torch.device(device)
        self.key = _cache_key(model, tokens, dtype)
        path = Path(cache_dir) / f"frozen_{self.key[:32]}.npy" if cache_dir else None
        if path is not None and path.exists():
            self.data = torch.from_numpy(np.load(path, mmap_mode="r+"))
            self.source = f"read {path}"
        else:
            self.data = self._compute(model, tokens, batch_size, CACHE_DTYPES[dtype],
                                      show_progress)
            if not torch.isfinite(self.data).all():
                raise InputError(f"--cache-dtype: the frozen activations overflow {dtype}; "
                                 "use --cache-dtype float32")
            self.source = "computed"
            if path is not None and rank_world()[0] == 0:
                with atomic_path(path) as tmp:
                    np.save(tmp, self.data.numpy())
                self.source = f"computed, saved {path}"
        self.location = "cpu"
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            fits = self.data.numel() * self.data.element_size() <= GPU_RESIDENT_FRACTION * free
            self.data = self.data.to(self.device) if fits else self.data
            self.location = "gpu" if fits else "pinned host memory"
        self.source += f", kept in {self.location}"

    def _compute(self, model, tokens, batch_size, dtype, show_progress):
        rank, world = rank_world()
        rows = np.arange(rank, len(tokens), world)
        parts = []
        for start in tqdm(range(0, len(rows), batch_size), desc="frozen-layer cache", unit="batch",
                          disable=True if not show_progress or rank != 0 else None, leave=False):
            ids = torch.from_numpy(tokens[rows[start:start + batch_size]].astype(np.int64))
            parts.append(model.features(ids.to(self.device)).to(dtype).cpu())
        mine = torch.cat(parts)
        if world == 1:
            return mine
        # equal-size shares for all_gather: pad, gather, then interleave back to row order
        share = -(-len(tokens) // world)
        padded = torch.zeros((share, *mine.shape[1:]), dtype=dtype)
        padded[:len(mine)] = mine
        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        gathered = [torch.empty_like(padded, device=device) for _ in range(world)]
        dist.all_gather(gathered, padded.to(device))
        out = torch.empty((len(tokens), *mine.shape[1:]), dtype=dtype)
        for r, part in enumerate(gathered):
            count = len(range(r, len(tokens), world))
            out[r::world] = part[:count].cpu()
        return out

    def __getitem__(self, index):
        """Rows `index` (a 1-d tensor) -> (b, S, l, c) float32 on the cache's device."""
        if self.location == "gpu":
            return self.data[index.to(self.device)].float()
        if self.location == "cpu":
            return self.data[index].to(self.device, torch.float32)
        rows = torch.empty((len(index), *self.data.shape[1:]), dtype=self.data.dtype,
                           pin_memory=True)  # from torch's caching host allocator
        torch.index_select(self.data, 0, index, out=rows)
        return rows.to(self.device, non_blocking=True).float()

    def __len__(self):
        return len(self.data)
