"""Hydra's Optuna sweeper with a study that outlives its process: re-running a sweep's command resumes it.

The stock sweeper runs n_trials more trials on every start, numbers its jobs from 0 again (a resumed
sweep would reuse the first trials' folders) and leaves a trial whose process died RUNNING for ever.
Here n_trials counts the study's finished trials, job k is trial k, and a trial whose process is gone
is failed and queued again with the same parameters. Several sweep processes may share a study (one
per GPU, say): each trial records the process running it, and a RUNNING trial of a live process, or
of another machine, is left alone.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from optuna.trial import TrialState

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted_trials"  # study attribute: the numbers of the trials queued again
WORKER = "worker"  # trial attribute: host:pid of the process that runs it
SQLITE = "sqlite:///"


class ResumableSweeperImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        if isinstance(self.storage, str):
            if self.storage.startswith(SQLITE):  # SQLite creates its file, not the folder
                Path(self.storage.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
            done = resume_study(self.storage, self.study_name)
            if done is not None and hasattr(self.sampler, "reseed_rng"):
                self.sampler.reseed_rng()  # a fixed seed would draw the first trials' parameters again
            log.info("study %s: %d of %d trials done", self.study_name, done or 0, self.n_trials)
            self.n_trials = max(0, self.n_trials - (done or 0))
        try:
            super().sweep(arguments)
        except RuntimeError as error:
            # The grid sampler stops the study after its last point; the stock sweeper allows for that
            # when the last trial completes, not when it fails. Either way the grid is done.
            if "Study.stop" not in str(error):
                raise

    def _configure_trials(self, trials, search_space_distributions, fixed_params):
        for trial in trials:
            trial.set_system_attr(WORKER, this_worker())
        self.job_idx = trials[0].number  # the launcher numbers this batch's jobs from here
        return super()._configure_trials(trials, search_space_distributions, fixed_params)


def resume_study(storage: str, study_name: str) -> int | None:
    """Fail the trials whose process is gone and queue their parameters again; return how many trials
    count towards n_trials (the finished ones, less those interruptions), None for a new study."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None
    interrupted = list(study.user_attrs.get(INTERRUPTED, []))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get(WORKER)
        if is_alive(worker):
            log.info("trial %d is running in %s: left to it", trial.number, worker)
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.enqueue_trial(trial.params)
        interrupted.append(trial.number)
        log.warning("trial %d was interrupted: it runs again with the same parameters", trial.number)
    study.set_user_attr(INTERRUPTED, interrupted)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    return len(finished) - len(interrupted)


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_alive(worker: str | None) -> bool:
    """Whether the host:pid process may still run (a process on another machine is assumed to)."""
    if worker is None or worker == this_worker():  # this process has just started: a pid used before
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
