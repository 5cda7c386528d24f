"""CPU runtimes for the networks that dominate inference: a torch module exported to ONNX once, cached
by its weights, and run by onnxruntime or OpenVINO (`CpuRuntimeModule`)."""

from spinefm.runtime.module import CpuRuntimeModule
from spinefm.runtime.sessions import CPU_RUNTIMES, require_runtime

__all__ = ["CPU_RUNTIMES", "CpuRuntimeModule", "require_runtime"]
