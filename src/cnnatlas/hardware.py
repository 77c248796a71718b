"""What this machine's processor can do, where only PyTorch's private probes can say: kept in this one
module, each with an answer for a PyTorch that lacks the probe."""

from __future__ import annotations

import platform

import torch


def bfloat16_emulated() -> bool:
    """Whether this x86 CPU lacks bfloat16 instructions (AVX-512 BF16 or AMX), so that oneDNN emulates
    bfloat16 arithmetic: there autocast to bfloat16 is slower than float32 (a tenth of the float32
    speed for the dense recipe's step on one AVX2 CPU), not faster. False where PyTorch cannot say."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(probe is None for probe in probes):
        return False
    return not any(probe() for probe in probes)
