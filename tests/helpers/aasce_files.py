"""Write small AASCE / SpineWeb-16 folders in the native layout (.mat + csv) for tests."""

import csv

import cv2
import numpy as np
import scipy.io

WIDTH, HEIGHT = 120, 300


def vertebra_corners(rng, count=17):
    """Stored order per vertebra: TL, TR, BL, BR, stacked top to bottom."""
    corners = []
    for k in range(count):
        top = 10 + 16 * k + rng.uniform(0, 2)
        x = 40 + rng.uniform(-5, 5)
        corners += [[x, top], [x + 40, top + 1], [x + 1, top + 12], [x + 41, top + 13]]
    return np.round(np.asarray(corners), 2)


def write_aasce(root, names, seed=0, top_stored_last=False):
    """Returns {image id: {"corners": (68, 2) array as stored, "angles": [3 floats]}}."""
    rng = np.random.default_rng(seed)
    images = root / "boostnet_labeldata" / "data" / "training"
    labels = root / "boostnet_labeldata" / "labels" / "training"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    truth, rows = {}, []
    for name in names:
        corners = vertebra_corners(rng)
        if top_stored_last:  # store the top vertebra last, as a few real files do
            corners = np.roll(corners, -4, axis=0)
        image = np.full((HEIGHT, WIDTH), 20, np.uint8)
        cv2.imwrite(str(images / f"{name}.jpg"), image)
        scipy.io.savemat(labels / f"{name}.jpg.mat", {"p2": corners})
        angles = list(np.round(rng.uniform(0, 40, 3), 3))
        truth[name] = {"corners": corners, "angles": angles}
        rows.append((f"{name}.jpg", corners, angles))
    with open(labels / "filenames.csv", "w", newline="") as f:
        csv.writer(f).writerows([[name] for name, _, _ in rows])
    with open(labels / "landmarks.csv", "w", newline="") as f:
        csv.writer(f).writerows([list(c[:, 0] / WIDTH) + list(c[:, 1] / HEIGHT) for _, c, _ in rows])
    with open(labels / "angles.csv", "w", newline="") as f:
        csv.writer(f).writerows([a for _, _, a in rows])
    return truth
