"""The writer pool: outputs written by other processes are the loop's own, failures come back by film."""

import multiprocessing

from helpers.oracles import middle, oracle_loop, phantom
from spinefm.pipeline.runner.writers import WriterPool

OVERLAY = {"max_side": 256, "alpha": 0.4}
VIEWS = ("lateral_cervical", "lateral_lumbar", "ap_thoracolumbar")


def write_all(pool, folder, films):
    for view, record, result in films:
        pool.submit(view, f"{view}.png", folder, result, record.image, {"file": None}, OVERLAY)
    return pool.collect() + pool.close()


def test_processes_write_the_loops_files_report_failures_by_film_and_end_with_the_pool(tmp_path):
    films = []
    for view in VIEWS:
        record = phantom(view)
        films.append((view, record, oracle_loop(record, middle(record)).run(record.image, view=view, image_id=view)))
    inline = write_all(WriterPool(0, 1), tmp_path / "inline", films)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output folder should be")
    pool = WriterPool(2, 2)  # a backlog of 2: later films wait for a free place
    view, record, result = films[0]
    pool.submit("broken", "broken.png", blocked, result, record.image, {"file": None}, OVERLAY)
    spawned = write_all(pool, tmp_path / "spawned", films)
    assert sorted(w.film_id for w in inline) == sorted(VIEWS) and all(w.error is None for w in inline)
    failed = [w for w in spawned if w.error]
    assert [(w.film_id, w.path) for w in failed] == [("broken", "broken.png")] and "writing outputs failed" in failed[
        0
    ].error
    assert sorted(w.film_id for w in spawned if not w.error) == sorted(VIEWS)
    names = sorted(p.name for p in (tmp_path / "inline").iterdir())
    assert len(names) == 3 * len(films) and names == sorted(p.name for p in (tmp_path / "spawned").iterdir())
    for name in names:
        assert (tmp_path / "inline" / name).read_bytes() == (tmp_path / "spawned" / name).read_bytes()
    assert not multiprocessing.active_children()  # closed: no writer left
