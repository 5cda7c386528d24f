"""SpineFM-Lightning: `spinefm.load(manifest)` gives a pipeline that segments and labels films
(`spinefm.api`). It is imported on first use, so a process that needs only a subpackage (a
reader, an output writer) does not import torch."""


def __getattr__(name: str):
    if name in ("load", "SpinePipeline"):
        from spinefm import api

        return getattr(api, name)
    raise AttributeError(f"module 'spinefm' has no attribute {name!r}")
