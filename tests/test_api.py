"""The README's Python example, run on the tiny trained components (with the settings that make
them walk) and a synthetic film."""

import contextlib
import io
import re

import cv2
import pytest

import spinefm
from helpers.infer_runs import COMPONENTS, LOOP
from helpers.train_runs import REPO
from spinefm.data.image_io import read_image
from spinefm.pipeline.components.loading import load_loop
from spinefm.synthetic import PhantomConfig, generate_phantom

MARKER = "<!-- the README's Python example: tests/test_api.py runs it -->"


def readme_example() -> str:
    (block,) = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text().split(MARKER, 1)[1], re.S)[:1]
    return block


def test_the_readme_example_prints_each_vertebra_as_the_loop_finds_it(manifest, tmp_path):
    film = tmp_path / "film.png"
    cv2.imwrite(str(film), generate_phantom(3, PhantomConfig(image_size=128)).image)
    settings = f"{str(manifest)!r}, loop={LOOP!r}, components={COMPONENTS!r}"
    code = re.sub(r'spinefm\.load\("[^"]*"\)', f"spinefm.load({settings})", readme_example())
    code = code.replace('"film.jpg"', repr(str(film)))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    expected = load_loop(manifest, LOOP, overrides=COMPONENTS).run(read_image(film, auto_invert=True).pixels)
    assert expected.instances
    lines = printed.getvalue().splitlines()
    assert lines == [f"{i.level} {i.centroid.round(1)} {i.mask.sum()}" for i in expected.instances]


def test_load_names_a_missing_manifest_and_finds_the_latest(manifest, tmp_path):
    missing = tmp_path / "nowhere" / "manifest.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        spinefm.load(missing)
    with pytest.raises(FileNotFoundError, match="no manifest.json under"):
        spinefm.load("latest", search_root=tmp_path)
    latest = spinefm.load("latest", search_root=manifest.parents[3])  # the one run there
    assert latest.loop.classifier.classes == load_loop(manifest).classifier.classes and latest.view is None
