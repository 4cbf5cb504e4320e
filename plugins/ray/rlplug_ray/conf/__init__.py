"""Config presets of rlplug-ray (none yet: ``executor=ray`` is its registered dataclass)."""
