"""A clean stop: SIGINT / SIGTERM raise `Interrupted` once; infer.py stopped mid-run keeps only complete
outputs, writes the summary of what it did, exits 143 and leaves no process behind (also when killed
outright); a rerun does the rest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from helpers.infer_runs import SIZES, WALKING
from helpers.train_runs import REPO
from spinefm.interrupt import Interrupted, stop_on_signals
from spinefm.synthetic import PhantomConfig, generate_phantom

FILMS = 24


@pytest.fixture
def handlers():
    """Ctrl-C as a foreground process gets it (a background pytest starts with SIGINT ignored); restored after."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_the_first_signal_raises_interrupted_and_later_ones_let_the_clean_up_finish(handlers, signum, status):
    before = signal.getsignal(signum)
    cleaned_up = False
    with pytest.raises(Interrupted) as stopped:
        with stop_on_signals():
            try:
                os.kill(os.getpid(), signum)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # a second signal, during the clean-up
                time.sleep(0.1)
                cleaned_up = True
    assert cleaned_up and stopped.value.signum == signum and stopped.value.exit_status == status
    assert not isinstance(stopped.value, Exception)  # no `except Exception` takes it for a film's failure
    assert signal.getsignal(signum) is before


def test_a_signal_the_process_ignores_stays_ignored(handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)


def test_a_process_forked_inside_leaves_quietly_on_a_signal(handlers):
    with stop_on_signals():
        child = os.fork()
        if child == 0:  # a DataLoader worker before its init_worker
            time.sleep(10)
            os._exit(3)
        time.sleep(0.2)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture(scope="module")
def many_films(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many_films")
    for seed in range(FILMS):
        cv2.imwrite(str(folder / f"f{seed:02d}.png"), generate_phantom(seed, PhantomConfig(image_size=128)).image)
    return folder


def start_infer(manifest, films, output, log_dir, *extra):
    """infer.py in its own process group (as `timeout` and SLURM signal it), one film per batch."""
    command = [
        sys.executable,
        "infer.py",
        f"pipeline.checkpoints={manifest}",
        f"input={films}",
        f"output={output}",
        f"paths.log_dir={log_dir}",
        "progress_bar=false",
        "films_per_batch=1",
        *SIZES,
        *WALKING,
        *extra,
    ]
    with open(output.parent / "infer.log", "w") as log:
        return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def first_film_done(process, output, timeout=180):
    start = time.monotonic()
    while not [p for p in output.glob("*.json") if p.name != "summary.json"]:
        assert process.poll() is None and time.monotonic() - start < timeout, "infer.py ended before its first film"
        time.sleep(0.02)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is dead, waiting for its new parent to reap it


def survivors(pids, within_s=2.0) -> list[str]:
    """`pids` still alive after `within_s`, with their command lines."""
    deadline = time.monotonic() + within_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [f"{pid}: {command_line(pid)}" for pid in pids if alive(pid)]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "(ended)"


def test_sigterm_mid_run_keeps_complete_outputs_and_a_rerun_does_the_rest(manifest, many_films, tmp_path):
    output = tmp_path / "out"
    process = start_infer(manifest, many_films, output, tmp_path / "logs", "num_workers=2")
    first_film_done(process, output)
    workers = children(process.pid)
    assert len(workers) >= 2  # the DataLoader workers, and any other helper process
    signalled = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    while not (output / "summary.json").exists() and time.monotonic() - signalled < 30:
        time.sleep(0.01)
    # No latency bound (a loaded machine may take seconds); that the run stopped early is asserted below.
    assert (output / "summary.json").exists(), "SIGTERM writes the summary of the films done"
    assert process.wait(timeout=60) == 143
    text = (tmp_path / "infer.log").read_text()
    assert "stopped by SIGTERM" in text and "Traceback" not in text and "killed by signal" not in text, text[-3000:]
    assert survivors(workers) == []

    summary = json.loads((output / "summary.json").read_text())
    assert summary["interrupted"] == "SIGTERM" and summary["failed"] == []
    done = {p.name[: -len(".json")] for p in output.glob("*.json") if p.name != "summary.json"}
    assert 1 <= len(summary["processed"]) and set(summary["processed"]) <= done and len(done) < FILMS
    names = {p.name for p in output.iterdir()}
    assert names == {"summary.json"} | {
        f"{i}{suffix}" for i in done for suffix in (".json", ".labels.png", ".overlay.png")
    }

    assert start_infer(manifest, many_films, output, tmp_path / "logs", "num_workers=2").wait(timeout=300) == 0
    again = json.loads((output / "summary.json").read_text())
    assert again["interrupted"] is None and sorted(again["skipped"]) == sorted(done)
    assert sorted(again["processed"] + again["skipped"]) == [f"f{seed:02d}" for seed in range(FILMS)]


def test_no_rank_or_worker_outlives_infer_killed_outright(manifest, many_films, tmp_path):
    """Two CPU ranks under DDP with a worker each; rank 0, which launched rank 1, gets SIGKILL."""
    output = tmp_path / "out"
    process = start_infer(
        manifest,
        many_films,
        output,
        tmp_path / "logs",
        "num_workers=1",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
    )
    first_film_done(process, output)
    deadline = time.monotonic() + 30
    while len(descendants := [*children(process.pid), *(g for c in children(process.pid) for g in children(c))]) < 3:
        assert time.monotonic() < deadline, f"rank 1 and a worker of each rank, not {descendants}"
        time.sleep(0.05)
    process.kill()
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert survivors(descendants) == [], "outlived their parent (torch's own watchdog takes 5 s)"
