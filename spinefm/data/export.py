"""Write any dataset's splits as COCO (images as PNG in their bit depth + one JSON per split).

    python -m spinefm.data.export dataset=synthetic out=DIR

The folder reads back with `dataset=synthetic dataset.root=DIR` or `dataset=coco`. Images that
cannot be read are reported by name and skipped.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from spinefm.data.coco_writer import CocoWriter
from spinefm.data.factory import build_reader
from spinefm.data.problems import DataError
from spinefm.data.readers.base import SPLITS
from spinefm.progress import progress

DISK_ANNOTATIONS = {split: f"annotations/{split}.json" for split in SPLITS}  # what the synthetic reader reads back

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


def export_dataset(dataset_cfg, out, splits=("train", "val", "test")) -> dict:
    """Export each split; returns {split: {"written": n, "skipped": [messages]}}."""
    report = {}
    for split in splits:
        reader = build_reader(dataset_cfg, split)
        writer = CocoWriter(out, DISK_ANNOTATIONS[split])
        skipped = []
        for index in progress(range(len(reader)), f"export {split}", unit="images"):
            try:
                record = reader[index]
                writer.add(record, record.load_image())
            except DataError as error:
                skipped.append(str(error.problem))
        writer.write()
        report[split] = {"written": len(writer.images), "skipped": skipped}
    return report


@hydra.main(config_path=CONFIG_DIR, config_name="export", version_base="1.3")
def main(cfg: DictConfig) -> None:
    report = export_dataset(cfg.dataset, cfg.out, splits=list(cfg.splits))
    for split, result in report.items():
        print(f"{split}: {result['written']} images written, {len(result['skipped'])} skipped")
        for message in result["skipped"]:
            print(f"  skipped {message}")
    print(f"COCO dataset in {Path(cfg.out).resolve()}")


if __name__ == "__main__":
    main()
