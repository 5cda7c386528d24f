"""The pipeline's settings as Hydra schemas: `pipeline.loop` is `LoopConfig` with its nested decoder
and label settings, so their defaults live in the dataclasses alone and configs/pipeline/default.yaml
sets only what differs. Hydra imports every module of `hydra_plugins` when it starts, which registers
the schema for every entry point and every compose, tests included."""

from hydra.core.config_store import ConfigStore

from spinefm.pipeline.core.loop_config import LoopConfig

ConfigStore.instance().store(group="schema/pipeline", name="loop", node=LoopConfig)
