"""The arm plugin's ``rlplug.configs`` hook: its presets live in ``rlplug_arm/conf`` (typed by the
core's schemas, so there is nothing to store in Hydra's ConfigStore)."""

from __future__ import annotations


def register() -> str:
    """The config search path of the arm's presets (``env/``, ``experiment/``)."""
    return "pkg://rlplug_arm.conf"
