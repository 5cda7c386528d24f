"""Progress in a log file is a few lines, not carriage-return bars; inference counts films."""

from lightning import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from torch.utils.data import DataLoader

import spinefm.progress
from spinefm.progress import ProgressLines, progress
from spinefm.progress_bar import FilmCountingBar, ProgressLinesBar, progress_bar


def test_quick_work_prints_its_last_line_and_longer_work_every_tenth(capsys, monkeypatch):
    assert list(progress(range(7), "quick", unit="films")) == list(range(7))
    assert capsys.readouterr().err.splitlines() == ["quick: 7/7 films (100 %)"]
    monkeypatch.setattr(spinefm.progress, "QUIET_SECONDS", 0.0)  # as if every step took long
    lines = ProgressLines("patches", 25, "films")
    for _ in range(25):
        lines.update(note=lambda: "ok")
    printed = capsys.readouterr().err.splitlines()
    assert printed[0] == "patches: 3/25 films (12 %)  ok" and printed[-1] == "patches: 25/25 films (100 %)  ok"
    assert len(printed) == 10


def test_training_and_inference_off_a_terminal_print_lines(capsys):
    bar = progress_bar()
    assert isinstance(bar, ProgressLinesBar)  # pytest's captured stderr is not a terminal
    trainer = Trainer(
        max_epochs=3,
        limit_train_batches=20,
        limit_val_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[bar],
    )
    trainer.fit(BoringModel())
    trainer.predict(BoringModel(), DataLoader(RandomDataset(32, 7), batch_size=3), return_predictions=False)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    # quick epochs: the first and the last epoch's validation metrics, then the films
    assert [line.split(":")[0] for line in lines if line.startswith("epoch")] == [
        "epoch 0 validated",
        "epoch 2 validated",
    ]
    assert lines[-1] == "inference: 7/7 films (100 %)"


def test_on_a_terminal_the_inference_bar_counts_films(monkeypatch):
    monkeypatch.setattr("spinefm.progress_bar.on_terminal", lambda: True)
    bar = progress_bar()
    assert isinstance(bar, FilmCountingBar)
    trainer = Trainer(logger=False, enable_model_summary=False, callbacks=[bar])
    trainer.predict(BoringModel(), DataLoader(RandomDataset(32, 7), batch_size=3), return_predictions=False)
    assert (bar.predict_progress_bar.n, bar.predict_progress_bar.total, bar.predict_progress_bar.unit) == (7, 7, "film")
