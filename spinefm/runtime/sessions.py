"""The CPU runtimes an exported graph can run on, each behind one call: numpy input -> numpy output."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spinefm.cli import UserError

# runtime -> the Python package it needs. openvino_bf16: OpenVINO computing in bfloat16 where the CPU
# has it (AVX512-BF16, AMX; float32 elsewhere): about 1.7x faster than float32 on AVX512-BF16.
CPU_RUNTIMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "openvino_bf16": "openvino"}


class UnknownRuntime(UserError, ValueError):
    pass


class MissingRuntime(UserError, ImportError):
    pass


def require_runtime(runtime: str) -> None:
    """Raise UnknownRuntime for an unknown runtime, MissingRuntime naming the package of a missing one."""
    if runtime not in CPU_RUNTIMES:
        raise UnknownRuntime(f"unknown CPU runtime {runtime!r}; expected torch or one of {sorted(CPU_RUNTIMES)}")
    package = CPU_RUNTIMES[runtime]
    if importlib.util.find_spec(package) is None:
        raise MissingRuntime(
            f"the {runtime} runtime needs the Python package {package!r}, which is not installed: "
            f"pip install {package} (or run the network in torch: cpu_runtime=torch)"
        )


def open_session(path: Path, runtime: str, threads: int, streams: int = 1) -> Callable[[list], list]:
    """A function running the graph at `path` (one input, one output) on each of a list of inputs, on
    `threads` CPU threads in all: `streams` inputs at a time, each on threads / streams of them (2 cores:
    two inputs side by side on one thread each ran a 160 px Med-SA patch in 0.92x the time of one
    input on both)."""
    require_runtime(runtime)
    streams = max(1, min(streams, threads))
    if runtime == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads // streams)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        each = ThreadPoolExecutor(streams, thread_name_prefix="onnxruntime").map if streams > 1 else map
        return lambda items: list(each(lambda inputs: session.run(None, {name: inputs})[0], items))
    import openvino

    precision = "bf16" if runtime == "openvino_bf16" else "f32"
    compiled = openvino.Core().compile_model(
        str(path),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": streams, "INFERENCE_PRECISION_HINT": precision},
    )
    queue = openvino.AsyncInferQueue(compiled, streams)

    def done(request, slot) -> None:
        outputs, index = slot
        outputs[index] = request.get_output_tensor(0).data.copy()

    queue.set_callback(done)

    def run(items: list) -> list:
        outputs = [None] * len(items)
        for index, inputs in enumerate(items):
            queue.start_async({0: inputs}, (outputs, index))
        queue.wait_all()
        return outputs

    return run
