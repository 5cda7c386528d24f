"""Mixed precision only where it pays: bfloat16 on a CPU without bfloat16 instructions is emulated.

On an AVX2 CPU (no AVX512-BF16, no AMX) torch's bf16 autocast ran a convolution block 9x and an MLP
block 25x slower than float32, forward and backward (2 cores, AMD EPYC); on AVX512-BF16 cores it
halved a Med-SA training step. A stage that asks for bf16 on a CPU without it trains in float32.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86: AVX512-BF16 or AMX; other CPUs: assumed so)."""
    capabilities = torch.cpu.get_capabilities()
    if capabilities.get("architecture") != "x86_64":
        return True
    return any(capabilities.get(flag) for flag in BF16_FLAGS)


def runs_on_cpu(accelerator: str) -> bool:
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def effective_precision(precision: str, accelerator: str) -> str:
    """`precision`, or 32-true where it asks for bf16 on a CPU that would emulate it (logged)."""
    precision = str(precision)
    if precision.startswith("bf16") and runs_on_cpu(accelerator) and not cpu_has_bf16():
        log.warning(
            "precision %s asked for on a CPU without bfloat16 instructions (AVX512-BF16 or AMX), where it "
            "runs several times slower than float32: training in 32-true",
            precision,
        )
        return "32-true"
    return precision
