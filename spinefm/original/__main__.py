"""python -m spinefm.original WEIGHTS_DIR --dataset nhanes|csxa --out DIR

Converts SpineFM's released weight files into this framework's checkpoints and DIR/manifest.json,
which infer.py and evaluate.py read as pipeline.checkpoints=DIR/manifest.json.
"""

from __future__ import annotations

import argparse
import sys

from spinefm.errors import UserError
from spinefm.original.convert import DATASETS, PATTERNS, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spinefm.original", description=__doc__.splitlines()[2])
    parser.add_argument("weights_dir", help="folder of the released .pth files and sam_vit_b_01ec64.pth")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--out", required=True, help="folder for the checkpoints and manifest.json")
    for name, pattern in PATTERNS.items():
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, metavar="FILE", help=f"default: the {pattern} in weights_dir")
    args = parser.parse_args(argv)
    given = {name: getattr(args, name) for name in PATTERNS}
    try:
        manifest = convert(args.weights_dir, args.dataset, args.out, given)
    except (UserError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {manifest}")
    print(f"next: python evaluate.py dataset={args.dataset} pipeline.checkpoints={manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
