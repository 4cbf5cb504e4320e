"""Keep a module's parameters (and gradients) as views into one flat tensor.

Pulling the global parameters is then one ``copy_``, pushing gradients needs no per-layer loop,
and the shared optimizer steps one tensor: the per-update overhead stays small for tiny networks
(pitfall 9 in the A3C anchors: per-layer ``load_state_dict`` calls dominate their cost).
"""

from __future__ import annotations

import torch
from torch import nn


def flatten_parameters(module: nn.Module, shared: bool = False) -> torch.Tensor:
    """Move ``module``'s parameters into one flat tensor (in shared memory if ``shared``) and
    return it; each parameter becomes a view of its slice."""
    params = list(module.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    if shared:
        flat.share_memory_()
    _assign_views(params, flat, "data")
    return flat


def attach_flat_grad(module: nn.Module) -> torch.Tensor:
    """Give every parameter a ``.grad`` that is a view of one zeroed flat tensor, and return it.

    ``backward`` accumulates into these views in place, so the flat tensor holds the whole
    gradient; zero it with ``flat_grad.zero_()`` (never ``zero_grad(set_to_none=True)``, which
    would detach the views: pitfall 1 in the A3C anchors).
    """
    params = list(module.parameters())
    flat = torch.zeros(sum(p.numel() for p in params))
    _assign_views(params, flat, "grad")
    return flat


def _assign_views(params: list[nn.Parameter], flat: torch.Tensor, attr: str) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        setattr(p, attr, flat[offset: offset + n].view_as(p))
        offset += n
