"""Many films through the inductive loop in lockstep, and the one-direction-at-a-time walk.

`LockstepRunner.run_many` detects on all films of a shape in one call, then runs `InductiveLoop.run_detections`
for each film in its own worker thread, with the segmenter, predictor and classifier behind proxies.
A proxy call only queues its request; once every unfinished film is waiting, one component's queue
is served with ONE batched call (segmenter and classifier through their `cut` / `infer` split, the
predictor by stacking windows). The loop's own code decides every step, so each film's result is
exactly `loop.run`'s. Queues are served in the step's order (predict, segment, classify), so films
that skipped a call wait for the others and the batches stay full.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spinefm.pipeline.loop import InductiveLoop
from spinefm.pipeline.types import LoopResult

SERVE_ORDER = ("predict", "segment", "classify")


@dataclass
class _Request:
    args: tuple
    result: object = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _Queues:
    """Requests waiting per component, and how many films are still running / waiting."""

    running: int
    waiting: int = 0
    pending: dict[str, list[_Request]] = field(default_factory=lambda: {kind: [] for kind in SERVE_ORDER})
    condition: threading.Condition = field(default_factory=threading.Condition)

    def call(self, kind: str, *args):
        """From a film's worker: queue a request and block until it is served."""
        request = _Request(args)
        with self.condition:
            self.pending[kind].append(request)
            self.waiting += 1
            self.condition.notify_all()
            self.condition.wait_for(lambda: request.done)
        if request.error is not None:
            raise request.error
        return request.result

    def finished(self) -> None:
        with self.condition:
            self.running -= 1
            self.condition.notify_all()


class _Proxy:
    """Stands in for one component inside the worker threads; `patch` and `classes` are the component's."""

    def __init__(self, queues: _Queues, component):
        self.queues = queues
        self.patch = getattr(component, "patch", None)
        self.classes = getattr(component, "classes", None)
        self.class_prior = getattr(component, "class_prior", None)

    def segment(self, image, centres, sides):
        return self.queues.call("segment", image, centres, sides)

    def classify(self, image, centres, sides):
        return self.queues.call("classify", image, centres, sides)

    def predict(self, windows, image_sizes):
        return self.queues.call("predict", windows, image_sizes)


class LockstepRunner:
    """Runs a loop's films together; `calls` counts the batched calls per component of the last run.

    detect_by_shape: one detector call per distinct film shape, so results equal `loop.run`'s
    (Mask R-CNN pads a batch to its largest film, which changes its proposals on the smaller ones);
    False: one call for all films, faster on films of mixed sizes but not identical to `loop.run`.
    """

    def __init__(self, loop: InductiveLoop, detect_by_shape: bool = True):
        self.loop = loop
        self.detect_by_shape = detect_by_shape
        self.calls: dict[str, int] = {}

    def run_many(
        self, images: Sequence[np.ndarray], views: Sequence[str | None] | None = None, image_ids: Sequence[str | None] | None = None
    ) -> list[LoopResult]:
        """The same results as `[loop.run(image, view, image_id) ...]`, in the images' order."""
        views = list(views) if views is not None else [None] * len(images)
        image_ids = list(image_ids) if image_ids is not None else [None] * len(images)
        if not len(views) == len(image_ids) == len(images):
            raise ValueError(f"{len(images)} images but {len(views)} views and {len(image_ids)} image ids")
        films = [self.loop.film(image, image_id) for image, image_id in zip(images, image_ids)]
        self.calls = {kind: 0 for kind in ("detect", *SERVE_ORDER)}
        if not films:
            return []
        detections = self._detect(films)
        queues = _Queues(running=len(films))
        loop = self.loop
        proxied = InductiveLoop(None, _Proxy(queues, loop.segmenter), _Proxy(queues, loop.predictor), _Proxy(queues, loop.classifier), loop.config)
        results: list[LoopResult | None] = [None] * len(films)
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                results[i] = proxied.run_detections(films[i], detections[i], views[i], image_ids[i])
            except BaseException as error:  # re-raised by the caller's thread below
                errors.append(error)
            finally:
                queues.finished()

        workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(films))]
        for worker in workers:
            worker.start()
        self._serve(queues)
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]
        return results

    def _detect(self, films: list[np.ndarray]) -> list:
        groups: dict[tuple, list[int]] = {}
        for i, film in enumerate(films):
            groups.setdefault(film.shape if self.detect_by_shape else (), []).append(i)
        detections = [None] * len(films)
        for indices in groups.values():
            for i, found in zip(indices, self.loop.detector.detect([films[i] for i in indices])):
                detections[i] = found
        self.calls["detect"] = len(groups)
        return detections

    def _serve(self, queues: _Queues) -> None:
        turn = 0
        with queues.condition:
            while True:
                queues.condition.wait_for(lambda: queues.waiting == queues.running)
                if queues.running == 0:
                    return
                # the next queue in step order that has requests
                kind = next(SERVE_ORDER[(turn + k) % 3] for k in range(3) if queues.pending[SERVE_ORDER[(turn + k) % 3]])
                turn = SERVE_ORDER.index(kind) + 1
                requests, queues.pending[kind] = queues.pending[kind], []
                queues.waiting -= len(requests)
                try:
                    answers = getattr(self, f"_{kind}")([r.args for r in requests])
                except BaseException as error:  # every film of the batch sees it
                    answers = [None] * len(requests)
                    for request in requests:
                        request.error = error
                self.calls[kind] += 1
                for request, answer in zip(requests, answers):
                    request.result, request.done = answer, True
                queues.condition.notify_all()

    def _segment(self, requests: list[tuple]) -> list:
        segmenter = self.loop.segmenter
        if not hasattr(segmenter, "cut"):
            return [segmenter.segment(*args) for args in requests]
        cuts = [segmenter.cut(image, np.asarray(centres, dtype=np.float64).reshape(-1, 2), sides) for image, centres, sides in requests]
        probabilities = iter(segmenter.infer(np.concatenate([inputs for inputs, _, _ in cuts])))
        return [
            [segmenter.to_image(next(probabilities), origin, side, image.shape) for origin, side in zip(origins, sides)]
            for (image, _, _), (_, origins, sides) in zip(requests, cuts)
        ]

    def _classify(self, requests: list[tuple]) -> list:
        classifier = self.loop.classifier
        if not hasattr(classifier, "cut"):
            return [classifier.classify(*args) for args in requests]
        patches = [classifier.cut(image, np.asarray(centres, dtype=np.float64).reshape(-1, 2), sides) for image, centres, sides in requests]
        return _split(classifier.infer(np.concatenate(patches)), [len(p) for p in patches])

    def _predict(self, requests: list[tuple]) -> list:
        windows = np.concatenate([w for w, _ in requests])
        points = self.loop.predictor.predict(windows, np.concatenate([s for _, s in requests]))
        return _split(points, [len(w) for w, _ in requests])


def _split(items, counts: list[int]) -> list:
    bounds = np.cumsum([0, *counts])
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
