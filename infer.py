"""Entry point: inference with the inductive pipeline (python infer.py pipeline.checkpoints=MANIFEST input=PATH output=DIR)."""

from spinefm.cli_pending import not_yet

if __name__ == "__main__":
    not_yet("infer.py", "inference with the inductive pipeline")
