"""Entry point: evaluation (python evaluate.py dataset=NAME)."""

from spinefm.cli_pending import not_yet

if __name__ == "__main__":
    not_yet("evaluate.py", "evaluation")
