"""Progress in a log file is lines, not carriage-return bars; inference counts films."""

from lightning import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from torch.utils.data import DataLoader

from spinefm.progress import ProgressLines, progress
from spinefm.progress_bar import ProgressLinesBar, progress_bar


def test_a_line_at_every_tenth_and_the_end(capsys):
    lines = ProgressLines("patches", 25, "films")
    for _ in range(25):
        lines.update()
    printed = capsys.readouterr().err.splitlines()
    assert printed[0] == "patches: 3/25 films (12 %)" and printed[-1] == "patches: 25/25 films (100 %)"
    assert len(printed) == 10
    assert list(progress(range(7), "x")) == list(range(7))


def test_training_and_inference_off_a_terminal_print_lines(capsys):
    bar = progress_bar()
    assert isinstance(bar, ProgressLinesBar)  # pytest's captured stderr is not a terminal
    trainer = Trainer(
        max_epochs=2,
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
    assert "epoch 0: 20/20 steps (100 %)" in [line.split("  ")[0] for line in lines]
    assert sum(line.startswith("epoch 1 validated:") for line in lines) == 1
    assert lines[-1] == "inference: 7/7 films (100 %)"
