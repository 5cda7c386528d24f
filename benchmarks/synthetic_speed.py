"""Synthetic phantom throughput per view, in one process (one core).

.venv/bin/python benchmarks/synthetic_speed.py --images 100 --size 512 --out outputs/benchmarks/synthetic_speed.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spinefm.io_utils import atomic_write_json
from spinefm.synthetic import PhantomConfig, generate_phantom


def measure(view: str, images: int, size: int) -> dict:
    config = PhantomConfig(image_size=size)
    generate_phantom(0, config, view=view)  # warm-up: imports and caches
    start = time.perf_counter()
    vertebrae = sum(len(generate_phantom(seed, config, view=view).vertebrae) for seed in range(images))
    seconds = time.perf_counter() - start
    return {
        "view": view,
        "images": images,
        "size": size,
        "seconds": seconds,
        "s_per_image": seconds / images,
        "images_per_minute": 60 * images / seconds,
        "vertebrae_per_image": vertebrae / images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", default="outputs/benchmarks/synthetic_speed.json")
    args = parser.parse_args()
    rows = [measure(view, args.images, args.size) for view in PhantomConfig().views]
    print(f"{'view':<18} {'images':>6} {'s/image':>8} {'images/min':>10} {'vertebrae':>9}")
    for row in rows:
        print(
            f"{row['view']:<18} {row['images']:>6} {row['s_per_image']:>8.4f} {row['images_per_minute']:>10.0f} "
            f"{row['vertebrae_per_image']:>9.1f}"
        )
    print(f"written to {atomic_write_json(Path(args.out), rows)}")


if __name__ == "__main__":
    main()
