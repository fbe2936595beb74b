"""Counting the FLOPs of the math that actually runs in a forward (or backward) pass.

Convention (Ultralytics' GFLOPs convention): one multiply-add is 2 FLOPs, and only products are
counted: convolutions, matmuls and attention. Element-wise ops (softmax, the logit scale, masks,
activations, norms, additions, interpolation) are not counted anywhere, attention included.

What counts them:

- ``torch.utils.flop_counter.FlopCounterMode`` sees every aten op that is dispatched and has
  formulas for convolutions, (b)mm/addmm and the CUDA fused attention kernels. It has none for the
  CPU fused kernel ``aten._scaled_dot_product_flash_attention_for_cpu`` (what
  ``F.scaled_dot_product_attention`` runs on the CPU for 4-D float32/float64/bfloat16/float16
  inputs with equal q/k/v widths and no dropout, masks and GQA included), nor for the other fused
  kernels listed in ``FUSED_ATTENTION_OPS``, so on its own it counts 0 for them. Importing this
  module adds formulas for those to torch's registry (only for ops torch has no formula for), so
  ``FlopCounter`` and any plain ``FlopCounterMode`` count them. Where SDPA falls back to its math path
  (3-D inputs, dropout, value width != key width) the math runs as ``bmm`` and is counted as such,
  with the same result.
- One scaled-dot-product attention of queries (..., L, E) over keys (..., S, E) and values
  (..., S, Ev) counts QK^T = 2 * prod(...) * L * S * E plus AV = 2 * prod(...) * L * S * Ev, where
  prod(...) is the product of the query's leading dims (batch * query heads, so GQA counts every
  query head). Masks and ``is_causal`` do not reduce the count: like the math path and torch's CUDA
  formulas, every logit is counted.
- ACmix's local window attention runs as element-wise multiplies and sums over the window inside a
  custom autograd Function, which ``FlopCounterMode`` cannot recognise as a product. ``FlopCounter``
  counts it with a formula per module class (``MODULE_FORMULAS``), evaluated by a forward hook on
  the input shape: logits q . k over d channels for K window offsets at every output pixel and head,
  plus the weighted sum of K values, i.e. 4 * B * C * K * H' * W' FLOPs (C = heads * d). Module
  formulas count the forward pass only. In inference on small maps ACmix runs the same attention as
  two dense matmuls over all positions (``ACmix.dense_attention``); those are the window's math with
  zero weights outside it, so the formula replaces their count and ACmix's FLOPs do not depend on
  the path taken.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula

from .attention.acmix import ACmix

__all__ = ["DESCRIPTION", "FUSED_ATTENTION_OPS", "MODULE_FORMULAS", "FlopCounter", "acmix_window_flops",
           "attention_flops", "count_flops"]

# What every GFLOPs figure of the project counts; printed next to the numbers (`yoloattn info`).
DESCRIPTION = ("torch FlopCounterMode convs and matmuls + fused attention + ACmix window attention, "
               "2 FLOPs per multiply-add; softmax and other element-wise ops excluded")


def attention_flops(batch_heads: int, q_len: int, kv_len: int, qk_dim: int, v_dim: int) -> int:
    """FLOPs of softmax(Q K^T) V without the softmax: 2 * batch_heads * q_len * kv_len * (qk_dim + v_dim).

    ``batch_heads`` is the number of independent (q_len, kv_len) attention maps, i.e. batch times
    query heads. Returns an int (FLOPs, 2 per multiply-add).
    """
    return 2 * batch_heads * q_len * kv_len * (qk_dim + v_dim)


def _sdpa_shapes_flops(query: torch.Size, key: torch.Size, value: torch.Size) -> int:
    """Forward FLOPs from q (..., L, E), k (..., S, E), v (..., S, Ev); k and v may have fewer heads (GQA)."""
    if len(query) < 2 or key[-1] != query[-1] or key[-2] != value[-2]:
        raise ValueError(f"attention shapes do not fit: q={tuple(query)}, k={tuple(key)}, v={tuple(value)}")
    return attention_flops(math.prod(query[:-2]), query[-2], key[-2], query[-1], value[-1])


def _fused_forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return _sdpa_shapes_flops(query, key, value)


def _fused_forward_into_out(out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    # `_flash_attention_forward_no_dropout_inplace` takes its output buffer first.
    return _sdpa_shapes_flops(query, key, value)


def _fused_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    # The backward recomputes QK^T, then forms dV = P^T dO, dP = dO V^T, dQ = dS K and dK = dS^T Q:
    # five products of the forward's sizes, as in torch's own formula for the CUDA kernels.
    batch_heads, q_len, kv_len = math.prod(query[:-2]), query[-2], key[-2]
    qk_dim, v_dim = query[-1], value[-1]
    return 2 * batch_heads * q_len * kv_len * (3 * qk_dim + 2 * v_dim)


def _native_mha(query, key, value, embed_dim, num_head, qkv_weight, *args, out_shape=None, **kwargs) -> int:
    # nn.MultiheadAttention's inference fast path: input projections, attention, output projection.
    batch = math.prod(query[:-2]) if len(query) > 2 else 1
    q_len, kv_len = query[-2], key[-2]
    projections = 2 * batch * (2 * q_len + 2 * kv_len) * embed_dim * embed_dim  # W_q, W_k, W_v, W_o
    return projections + attention_flops(batch * num_head, q_len, kv_len, embed_dim // num_head,
                                         embed_dim // num_head)


_FORMULAS_BY_NAME: dict[str, Callable[..., int]] = {
    "_scaled_dot_product_flash_attention_for_cpu": _fused_forward,
    "_scaled_dot_product_flash_attention_for_cpu_backward": _fused_backward,
    "_scaled_dot_product_fused_attention_overrideable": _fused_forward,
    "_scaled_dot_product_fused_attention_overrideable_backward": _fused_backward,
    "_scaled_dot_product_attention_math_for_mps": _fused_forward,
    "_flash_attention_forward_no_dropout_inplace": _fused_forward_into_out,
    "_native_multi_head_attention": _native_mha,
    # torch has formulas for these; the same math is registered here so that a torch version
    # without them still counts them (torch's own formula wins where present, see below).
    "_scaled_dot_product_flash_attention": _fused_forward,
    "_scaled_dot_product_flash_attention_backward": _fused_backward,
    "_scaled_dot_product_efficient_attention": _fused_forward,
    "_scaled_dot_product_efficient_attention_backward": _fused_backward,
    "_scaled_dot_product_cudnn_attention": _fused_forward,
    "_scaled_dot_product_cudnn_attention_backward": _fused_backward,
}


def _fused_attention_ops() -> dict[Any, Callable[..., int]]:
    ops = {}
    for name, formula in _FORMULAS_BY_NAME.items():
        try:
            packet = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):  # an op this torch build does not have
            continue
        if packet not in flop_registry:  # torch's formulas also handle nested (varlen) inputs
            ops[packet] = formula
    return ops


# aten op packet -> formula(shapes of the op's arguments) -> FLOPs, registered with torch below.
FUSED_ATTENTION_OPS: dict[Any, Callable[..., int]] = _fused_attention_ops()


def _fill_torch_registry() -> None:
    """Give torch's own ``FlopCounterMode`` the fused-attention formulas it lacks, once, on import.

    Only ops with no formula in ``torch.utils.flop_counter.flop_registry`` are added (torch's own stay
    untouched), so any ``FlopCounterMode`` in the process, not only ``FlopCounter``, stops counting
    fused attention as 0 once ``yoloattn.flops`` (or ``yoloattn.bench``) is imported.
    """
    for packet, formula in FUSED_ATTENTION_OPS.items():
        if packet not in flop_registry:
            register_flop_formula(packet)(formula)


_fill_torch_registry()


def acmix_window_flops(module: ACmix, x_shape: tuple[int, ...]) -> int:
    """FLOPs of ACmix's window attention on an input of shape (B, c1, H, W).

    Logits: q(u) . k(u + o_j) over d = ``head_dim`` channels for each of K = len(``offsets``)
    window offsets, at every output pixel u of every head; output: sum_j att_j(u) v(u + o_j), also
    K * d multiply-adds per pixel and head. The output map is H' x W' with
    H' = (H + 2 * padding_att - span_y) // stride + 1, span_y = max offset + 1 (ceil(H / stride) for
    the module's odd windows). Total 4 * B * heads * d * K * H' * W' FLOPs; the softmax, the d^-0.5
    scale and the positional-encoding subtraction are element-wise and not counted. The 1x1
    projections and the convolution path are convolutions, counted by FlopCounterMode.
    Raises ValueError if ``x_shape`` is not 4-D.
    """
    if len(x_shape) != 4:
        raise ValueError(f"ACmix takes (B, C, H, W) inputs, got shape {tuple(x_shape)}")
    batch, _, height, width = x_shape
    pad, stride = module.padding_att, module.stride
    span_y = max(dy for dy, _ in module.offsets) + 1
    span_x = max(dx for _, dx in module.offsets) + 1
    out_h = (height + 2 * pad - span_y) // stride + 1
    out_w = (width + 2 * pad - span_x) // stride + 1
    channels = module.head * module.head_dim
    macs_per_product = batch * channels * len(module.offsets) * out_h * out_w
    return 2 * macs_per_product * 2  # logits and weighted values, 2 FLOPs per multiply-add each


def _acmix_hook_formula(module: ACmix, args: tuple, output: Any) -> tuple[int, dict[str, int]]:
    shape = tuple(args[0].shape)
    replaced = {}
    if len(shape) == 4 and module.dense_attention(shape[2], shape[3], recording=output.requires_grad):
        # FlopCounterMode counted the dense form's two batched matmuls (the window's math plus zero
        # weights outside it): the window's count replaces them
        batch, _, height, width = shape
        out_positions = -(-height // module.stride) * -(-width // module.stride)
        replaced["aten.bmm"] = 2 * 2 * batch * module.head * out_positions * height * width * module.head_dim
    return acmix_window_flops(module, shape), replaced


# Module class -> formula(module, forward args, output) -> FLOPs of math FlopCounterMode cannot see
# inside that module's forward, and optionally a dict {aten op name: FLOPs} of dispatched ops inside
# it whose count the formula replaces. Subclasses match too.
MODULE_FORMULAS: dict[type[nn.Module], Callable[[nn.Module, tuple, Any], int | tuple[int, dict[str, int]]]] = {
    ACmix: _acmix_hook_formula,
}


def _module_formula(module: nn.Module) -> Callable[[nn.Module, tuple, Any], int] | None:
    for cls in type(module).__mro__:
        if cls in MODULE_FORMULAS:
            return MODULE_FORMULAS[cls]
    return None


class FlopCounter:
    """Context manager counting the FLOPs of everything run inside it (see the module docstring).

    Usage::

        with torch.no_grad(), FlopCounter() as counter:
            model(x)
        counter.total  # int, FLOPs (2 per multiply-add)

    Counts the calling thread only. Not reentrant: nest two instances, not one twice.
    """

    def __init__(self) -> None:
        self._mode = FlopCounterMode(display=False)  # fused-attention formulas: registered on import
        self._module_counts: dict[str, int] = defaultdict(int)
        self._replaced: dict[str, int] = defaultdict(int)  # dispatched FLOPs a module formula counts instead
        self._thread: int | None = None
        self._hook = None

    def __enter__(self) -> FlopCounter:
        self._module_counts.clear()
        self._replaced.clear()
        self._thread = threading.get_ident()
        self._mode.__enter__()
        # A global hook also sees modules built or reached outside a given model (bare calls).
        self._hook = nn.modules.module.register_module_forward_hook(self._after_forward)
        return self

    def __exit__(self, *exc) -> None:
        self._hook.remove()
        self._hook = None
        self._mode.__exit__(*exc)

    def _after_forward(self, module: nn.Module, args: tuple, output: Any) -> None:
        if threading.get_ident() != self._thread:
            return
        formula = _module_formula(module)
        if formula is not None:
            counted = formula(module, args, output)
            count, replaced = counted if isinstance(counted, tuple) else (counted, {})
            self._module_counts[f"{type(module).__name__} (module formula)"] += int(count)
            for op, n in replaced.items():
                self._replaced[op] += int(n)

    @property
    def total(self) -> int:
        """All FLOPs counted so far: dispatched ops plus module formulas (int)."""
        return int(self._mode.get_total_flops()) - sum(self._replaced.values()) + sum(self._module_counts.values())

    def breakdown(self) -> dict[str, int]:
        """FLOPs per aten op (e.g. ``'aten.convolution'``) and per module formula; sums to ``total``.

        Dispatched ops whose count a module formula replaced are reduced by it (and left out at 0).
        """
        counts = {str(op): int(n) for op, n in self._mode.get_flop_counts().get("Global", {}).items()}
        for op, n in self._replaced.items():
            counts[op] = counts.get(op, 0) - n
        counts = {op: n for op, n in counts.items() if n}
        counts.update(self._module_counts)
        return counts


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs (int, 2 per multiply-add) of ``fn(*args, **kwargs)``, run once under ``FlopCounter``.

    Gradients stay as the caller set them (wrap in ``torch.no_grad()`` for a forward-only count of a
    module whose parameters require grad; the forward FLOPs are the same either way).
    """
    with FlopCounter() as counter:
        fn(*args, **kwargs)
    return counter.total
