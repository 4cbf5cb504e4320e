"""Turning a saved (plain dict) config back into validated dataclasses, via the ConfigStore.

A plugin registers the config dataclass of each option ``<name>`` of a group as
``<group>/<name>`` in the ConfigStore; the core finds it by the section's ``name`` key.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rlplug.config import RunConfig
from rlplug.errors import UserError


def schema_node(group: str, name: str) -> Any:
    try:
        return ConfigStore.instance().load(f"{group}/{name}.yaml").node
    except Exception as exc:
        raise UserError(f"no config schema for {group} '{name}': is the plugin that provides it "
                        f"installed? (see `python -m rlplug --list`)") from exc


def run_config_from_dict(saved: dict[str, Any]) -> RunConfig:
    """Validate a resolved config dict (e.g. from a checkpoint) into a :class:`RunConfig`."""
    cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), {
        k: v for k, v in saved.items() if k not in ("algo", "network", "executor")})
    for group in ("algo", "network", "executor"):
        section = saved.get(group) or {}
        node = schema_node(group, section.get("name", "?"))
        cfg[group] = OmegaConf.merge(node, section)
    run = OmegaConf.to_object(cfg)
    assert isinstance(run, RunConfig)
    return run
