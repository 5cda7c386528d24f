"""Synthetic spine radiograph phantoms with exact vertebra outlines, for tests and pre-training."""

from spinefm.synthetic.phantom import PhantomConfig, generate_phantom

__all__ = ["PhantomConfig", "generate_phantom"]
