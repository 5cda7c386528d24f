"""What the entry points (train.py, infer.py, evaluate.py) share: how they end.

Exit status: 0 done; 1 some film failed (`allow_failures=true`: 0) or an unexpected error (a
traceback); 2 a user error (`USER_ERRORS`, among them `UserError` of spinefm.errors: one line on stderr,
the traceback only with HYDRA_FULL_ERROR=1); 128 + the signal's number when stopped by SIGINT (130) or SIGTERM (143).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from contextlib import contextmanager

from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from omegaconf.errors import MissingMandatoryValue

from spinefm.errors import UserError
from spinefm.interrupt import Interrupted, stop_on_signals

EXIT_FAILED_FILMS = 1
EXIT_USER_ERROR = 2
# Third-party messages that ask nothing of a user of this project: deprecations inside the libraries
# (segment-anything's TinyViT imports timm's old paths; Lightning's pytree calls) and an advert.
KNOWN_WARNINGS = (
    (FutureWarning, r"Importing from timm\.models\."),
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)
ADVERT = "💡 Tip:"


USER_ERRORS = (UserError, FileNotFoundError, MissingMandatoryValue)


@contextmanager
def user_errors_reported():
    """A user error in the block (also one raised by a config's `_target_`, which Hydra wraps) is one
    line on stderr and exit status 2."""
    try:
        yield
    except (*USER_ERRORS, InstantiationException) as raised:
        error = raised.__cause__ if isinstance(raised, InstantiationException) else raised
        if not isinstance(error, USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = (
            f"{error.full_key} is required: add {error.full_key}=..."
            if isinstance(error, MissingMandatoryValue)
            else str(error)
        )
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def not_an_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(ADVERT)


def quiet_known_noise() -> None:
    """Silence `KNOWN_WARNINGS`, Lightning's advert for its cloud logger and its second console."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(not_an_advert)  # one function: a second call adds nothing
    # The `lightning` package gives its logger a console handler of its own on import, and its records
    # also reach the run's handlers (console and log file): each line would print twice.
    import lightning  # noqa: F401

    lightning_logger = logging.getLogger("lightning")
    for handler in [h for h in lightning_logger.handlers if type(h) is logging.StreamHandler]:
        lightning_logger.removeHandler(handler)


def entry_point(stoppable: bool = False):
    """Decorates a Hydra task function (under `@hydra.main`): known third-party noise silenced, user
    errors reported in one line; with `stoppable`, SIGINT and SIGTERM stop it cleanly
    (`interrupt.stop_on_signals`)."""

    def decorate(task):
        @functools.wraps(task)
        def run(cfg):
            quiet_known_noise()
            with user_errors_reported():
                if not stoppable:
                    return task(cfg)
                try:
                    with stop_on_signals():
                        return task(cfg)
                except Interrupted as stop:
                    print("\n".join([f"stopped by {stop.name}", *getattr(stop, "__notes__", [])]), file=sys.stderr)
                    sys.exit(stop.exit_status)

        return run

    return decorate


def exit_if_failed(failed: int, allow_failures: bool) -> None:
    """Exit status 1 when a film failed, unless failures are allowed."""
    if failed and not allow_failures:
        print(
            f"error: films failed: {failed}, listed in the summary (allow_failures=true exits 0 all the same)",
            file=sys.stderr,
        )
        sys.exit(EXIT_FAILED_FILMS)


class RequireStage(Callback):
    """train.py: no run folder and one line when neither a stage nor an experiment is chosen."""

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config)

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config)

    @staticmethod
    def _check(config) -> None:
        if config.get("stage") is None and not config.get("stages"):
            stages = "|".join(GlobalHydra.instance().config_loader().get_group_options("stage"))
            with user_errors_reported():
                raise UserError(
                    f"no stage: add stage=<{stages}>, or experiment=train_all for all of them "
                    "(experiment=train_all_tiny on a CPU)"
                )
