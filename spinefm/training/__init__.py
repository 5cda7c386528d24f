"""LightningModules: each wraps one plain network from spinefm.models and trains it."""
