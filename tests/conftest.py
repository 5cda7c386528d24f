"""Tests use tiny models: one CPU thread per process is faster than two that fight for the cores,
and subprocesses (train.py runs) inherit the setting. ONNX exports (`spinefm.runtime`) are cached in
the temporary folder, never in the user's cache."""

import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["SPINEFM_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "spinefm-test-cache")

import pytest  # noqa: E402
import torch  # noqa: E402  (after the environment is set for child processes)

from helpers.train_runs import run_dirs, run_train  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def one_thread(monkeypatch):
    """Tiny nets in train.py subprocesses: one thread each, so other jobs on the cores cannot stall them."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def manifest(tmp_path_factory):
    """manifest.json of the five tiny components, trained once per test session on synthetic films."""
    log_dir = tmp_path_factory.mktemp("train_all_tiny")
    run_train(log_dir, "experiment=train_all_tiny", "debug=limit")
    (run,) = run_dirs(log_dir, "train_all_tiny")
    return run / "manifest.json"
