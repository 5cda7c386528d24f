"""Lockstep batching across films and the one-direction walk give `InductiveLoop.run`'s results,
with oracle components (tests/test_pipeline_loop.py) that serve several films at once."""

import numpy as np
import pytest
import torch

from benchmarks.pipeline_speed import MODES, ForwardClock, benchmark
from helpers.oracles import (
    END_LEVELS,
    LABELS,
    OracleClassifier,
    OracleDetector,
    OraclePredictor,
    OracleSegmenter,
    Truth,
    middle,
    phantom,
)
from spinefm.data.classes import class_names
from spinefm.data.intensity import to_uint8
from spinefm.pipeline import InductiveLoop
from spinefm.pipeline.core.loop import LockstepRunner
from spinefm.pipeline.core.types import ALL_ROLES, DOWN, UP
from spinefm.synthetic import PhantomConfig, generate_phantom


def _key(image) -> bytes:
    return to_uint8(np.asarray(image)).tobytes()


class Films:
    """Per-film oracles behind one component of each role, serving several films per call;
    records the batch size (vertebrae or films) of every call."""

    def __init__(self, records, detected):
        self.oracles = {}
        for record, indices in zip(records, detected):
            truth = Truth(record)
            self.oracles[_key(record.image)] = (
                OracleDetector(truth, indices),
                OracleSegmenter(truth),
                OraclePredictor(truth),
                OracleClassifier(truth),
            )
        self.batches = {"detect": [], "segment": [], "classify": [], "predict": []}

    def components(self):
        return Detector(self), Segmenter(self), Predictor(self), Classifier(self)


class Detector:
    def __init__(self, films):
        self.films = films

    def detect(self, images):
        self.films.batches["detect"].append(len(images))
        return [self.films.oracles[_key(image)][0].detect([image])[0] for image in images]


class Segmenter:
    patch = OracleSegmenter.patch

    def __init__(self, films):
        self.films = films

    def segment(self, requests):
        self.films.batches["segment"].append(sum(len(r.centres) for r in requests))
        return [self.films.oracles[_key(r.film)][1].segment([r])[0] for r in requests]


class Classifier:
    patch = OracleClassifier.patch
    classes, class_prior = class_names(END_LEVELS), None

    def __init__(self, films):
        self.films = films

    def classify(self, requests):
        self.films.batches["classify"].append(sum(len(r.centres) for r in requests))
        return [self.films.oracles[_key(r.film)][3].classify([r])[0] for r in requests]


class Predictor:
    """Predicts per window with the oracle of the film of its size (the test films' sizes differ)."""

    def __init__(self, films):
        self.films = films

    def predict(self, windows, image_sizes):
        self.films.batches["predict"].append(len(windows))
        points = []
        for window, size in zip(windows, image_sizes):
            (oracle,) = [o[2] for o in self.films.oracles.values() if o[2].truth.labels.shape[::-1] == tuple(size)]
            points.append(oracle.predict(window[None], size[None])[0])
        return np.array(points)


def films_and_detections():
    """Three views of different lengths, a film without detections, one with two, one with one."""
    records = [phantom(view) for view in ("lateral_cervical", "lateral_lumbar", "ap_thoracolumbar")]
    records += [generate_phantom(seed, PhantomConfig(image_size=size)) for seed, size in ((7, 192), (8, 224), (9, 160))]
    detected = [middle(r) for r in records[:3]] + [[], middle(records[4], 2), middle(records[5], 1)]
    return records, detected


def assert_same(result, expected, same_step_order=True):
    assert (result.image_id, result.view, result.image_shape) == (
        expected.image_id,
        expected.view,
        expected.image_shape,
    )
    assert result.levels == expected.levels and result.trace.stops == expected.trace.stops
    assert (result.trace.status, result.trace.seeds, result.trace.dropped) == (
        expected.trace.status,
        expected.trace.seeds,
        expected.trace.dropped,
    )
    for a, b in zip(result.instances, expected.instances, strict=True):
        assert (
            a.offset == b.offset
            and np.array_equal(a.mask, b.mask)
            and np.array_equal(a.probability.values, b.probability.values)
        )
        assert np.array_equal(a.centroid, b.centroid) and (a.source, a.spine_class, a.score) == (
            b.source,
            b.spine_class,
            b.score,
        )
    groups = [result.trace.steps] if same_step_order else [result.trace.steps_in(d) for d in (UP, DOWN)]
    expected_groups = [expected.trace.steps] if same_step_order else [expected.trace.steps_in(d) for d in (UP, DOWN)]
    for steps, expected_steps in zip(groups, expected_groups):
        assert [(s.direction, s.index, s.outcome, s.spine_class) for s in steps] == [
            (s.direction, s.index, s.outcome, s.spine_class) for s in expected_steps
        ]
        assert all(
            np.array_equal(s.predicted, e.predicted) and np.array_equal(s.window, e.window)
            for s, e in zip(steps, expected_steps)
        )


@pytest.mark.parametrize("sequential", [False, True])
def test_lockstep_gives_each_films_own_results_with_one_batch_per_component_and_round(sequential):
    records, detected = films_and_detections()
    images, views, ids = [r.image for r in records], [r.view for r in records], [r.id for r in records]
    films = Films(records, detected)
    loop = InductiveLoop(*films.components(), {"labels": LABELS, "sequential": sequential})
    expected = [loop.run(image, view, image_id) for image, view, image_id in zip(images, views, ids)]
    alone = films.batches
    films.batches = {stage: [] for stage in films.batches}
    runner = LockstepRunner(loop)
    results = runner.run_many(images, views, ids)
    for result, one in zip(results, expected, strict=True):
        assert_same(result, one)
    assert [r.trace.status for r in results] == ["ok"] * 3 + ["no_detections", "ok", "ok"]
    assert [len(r.instances) for r in results] == [len(r.vertebrae) for r in records[:3]] + [
        0,
        len(results[4].instances),
        1,
    ]
    assert results[4].trace.steps and results[5].trace.stops == {UP: "one_seed", DOWN: "one_seed"}
    # one detector call per film shape; the same requests as film by film in fewer, fuller calls
    assert films.batches["detect"] == [1] * len(records)  # every test film has its own shape
    assert runner.calls == {kind: len(batches) for kind, batches in films.batches.items()}
    for stage in ("segment", "classify", "predict"):
        assert sum(films.batches[stage]) == sum(alone[stage])
        assert len(films.batches[stage]) < len(alone[stage]) and max(films.batches[stage]) > 1


def test_the_sequential_walk_equals_the_batched_one_one_vertebra_per_call():
    records, detected = films_and_detections()
    films = Films(records, detected)
    every = {"labels": LABELS, "detector_masks": False}  # the segmenter at every position: a call per step
    default = InductiveLoop(*films.components(), every)
    sequential = InductiveLoop(*films.components(), {**every, "sequential": True})
    for record in records:
        expected = default.run(record.image, record.view, record.id)
        films.batches = {kind: [] for kind in films.batches}
        result = sequential.run(record.image, record.view, record.id)
        assert_same(result, expected, same_step_order=False)
        walking = films.batches["segment"][1:]  # after the seeds' call
        assert all(size == 1 for size in walking + films.batches["predict"])
        assert len(walking) == sum(s.outcome != "border" for s in result.trace.steps)
        directions = [s.direction for s in result.trace.steps]
        assert directions == sorted(directions, key=lambda d: d != UP)  # up fully, then down


def test_lockstep_detects_all_films_in_one_call_when_asked():
    records, detected = films_and_detections()
    films = Films(records, detected)
    loop = InductiveLoop(*films.components(), {"labels": LABELS})
    runner = LockstepRunner(loop, detect_by_shape=False)
    results = runner.run_many([r.image for r in records], [r.view for r in records])
    assert films.batches["detect"] == [len(records)] and runner.calls["detect"] == 1
    assert [r.levels for r in results] == [loop.run(r.image, r.view).levels for r in records]
    assert runner.run_many([]) == []


def test_a_component_error_reaches_the_caller():
    records, detected = films_and_detections()
    films = Films(records, detected)
    detector, segmenter, predictor, classifier = films.components()
    classifier.classify = lambda requests: (_ for _ in ()).throw(RuntimeError("classifier down"))
    runner = LockstepRunner(InductiveLoop(detector, segmenter, predictor, classifier, {"labels": LABELS}))
    with pytest.raises(RuntimeError, match="classifier down"):
        runner.run_many([r.image for r in records], [r.view for r in records])


def test_benchmark_core_splits_every_mode_into_forwards_and_other():
    """The oracles have no networks, so every second is "other" and no forward is counted."""
    records, detected = films_and_detections()
    records, detected = records[:2], detected[:2]
    films = Films(records, detected)
    report = benchmark(
        InductiveLoop(*films.components(), {"labels": LABELS}), [r.image for r in records], [r.view for r in records]
    )
    assert (
        set(report) == {"images", "precision", "modes", "lockstep_over_sequential", "same_levels"}
        and report["images"] == 2
    )
    assert list(report["modes"]) == list(MODES) and report["same_levels"] == 2
    for row in report["modes"].values():
        assert row["seconds"] > 0 and row["other_seconds"] == row["seconds"] and row["other_fraction"] == 1.0
        assert set(row["forward_seconds"]) == set(ALL_ROLES) and not any(row["forward_calls"].values())
        assert row["instances"] == sum(len(r.vertebrae) for r in records)


def test_the_forward_clock_times_each_roles_network():
    class Net(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class Role:
        def __init__(self):
            self.model = Net()

        def networks(self):  # as adapters name theirs
            return [self.model]

    loop = InductiveLoop(Role(), Role(), Role(), Role())
    clock = ForwardClock(loop)
    loop.segmenter.model(torch.ones(3))
    loop.segmenter.model(torch.ones(3))
    loop.classifier.model(torch.ones(3))
    assert dict(clock.calls) == {"segmenter": 2, "classifier": 1} and clock.seconds["segmenter"] > 0
    clock.remove()
    loop.detector.model(torch.ones(3))
    assert "detector" not in clock.calls
