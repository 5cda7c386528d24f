"""Every dataset option composes and instantiates; the entry points answer without crashing; the
pipeline's defaults live in its dataclasses alone."""

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers.aasce_files import write_aasce
from helpers.native_formats import write_csxa_native, write_csxa_prepared, write_nhanes
from spinefm.data.coco_writer import CocoWriter
from spinefm.data.factory import build_reader
from spinefm.data.readers.base import Reader
from spinefm.data.record import ImageRecord, Vertebra
from spinefm.pipeline import DecodeConfig, LoopConfig

REPO = Path(__file__).resolve().parents[1]
DATASETS = sorted(p.stem for p in (REPO / "configs" / "dataset").glob("*.yaml"))


def write_coco(root):
    import numpy as np

    writer = CocoWriter(root, "annotations.json")
    for i in range(3):
        record = ImageRecord(f"img{i}", [Vertebra("L1", polygon=[[5, 5], [20, 5], [20, 12], [5, 12]])])
        writer.add(record, np.zeros((30, 30), np.uint8))
    writer.write()


WRITERS = {
    "aasce": lambda root: write_aasce(root, ["a-1 A AP", "a-2 A AP", "a-3 A AP"]),
    "nhanes": write_nhanes,
    "csxa": write_csxa_prepared,
    "coco": write_coco,
}


def compose_config(name, *overrides):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=False)


def test_every_dataset_has_a_writer_or_generator():
    assert set(DATASETS) == {"aasce", "coco", "csxa", "nhanes", "synthetic", "synthetic_small"}


@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_config_composes_and_reads_its_native_files(dataset, tmp_path):
    overrides = [f"dataset={dataset}"]
    if dataset in WRITERS:
        WRITERS[dataset](tmp_path)
        overrides.append(f"dataset.root={tmp_path}")
    else:
        overrides += ["dataset.reader.num_images={train:2,val:1,test:1}"]
    cfg = compose_config("check", *overrides)
    for key in ("name", "root", "view", "first_level", "last_level", "reader"):
        assert key in cfg.dataset
    reader = build_reader(cfg.dataset, "all")
    assert isinstance(reader, Reader) and len(reader) > 0
    record = reader[0]
    assert record.vertebrae and record.load_image().ndim == 2


def test_csxa_native_layout_through_the_config(tmp_path):
    write_csxa_native(tmp_path)
    cfg = compose_config("check", "dataset=csxa", f"dataset.root={tmp_path}")
    reader = build_reader(cfg.dataset, "all")
    assert len(reader) > 0 and reader[0].vertebrae


def test_export_config_requires_out():
    cfg = compose_config("export")
    assert cfg.dataset.name == "synthetic"
    with pytest.raises(Exception, match="out"):
        _ = cfg.out


def yaml_value(value) -> str:
    """A default as the docs write it (YAML spelling)."""
    if value is None or isinstance(value, bool):
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def test_the_methods_tables_show_the_dataclasses_defaults():
    """docs/method.md lists every LoopConfig setting with its default, and the decoder's defaults."""
    method = (REPO / "docs" / "method.md").read_text()
    rows = re.findall(r"^\| (`\w+`(?:, `\w+`)*) \| ([^|]+) \|", method, flags=re.M)
    shown = {}
    for names, defaults in rows:
        for name, default in zip(re.findall(r"`(\w+)`", names), defaults.split(", ")):
            shown[name] = re.split(r"[ :]", default.strip(), maxsplit=1)[0]
    loop = LoopConfig.__dataclass_fields__
    expected = {name: yaml_value(field.default) for name, field in loop.items() if name not in ("decode", "labels")}
    assert {name: shown.get(name) for name in expected} == expected
    decoder = DecodeConfig()
    for name in DecodeConfig.__dataclass_fields__:
        if name != "evidence":
            assert f"`{name}` {yaml_value(getattr(decoder, name))}" in method.replace("\n", " "), name


def test_the_pipeline_config_sets_only_what_differs_from_the_dataclasses():
    loop = OmegaConf.load(REPO / "configs" / "pipeline" / "default.yaml").loop
    defaults = OmegaConf.structured(LoopConfig)
    assert all(loop[key] != defaults[key] for key in loop), OmegaConf.to_yaml(loop)
