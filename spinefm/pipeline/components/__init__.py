"""The trained models behind the roles: the adapters, their registry, and loading a manifest's checkpoints."""
