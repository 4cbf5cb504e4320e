"""rlplug-example: one small plugin of every kind, to read and to copy (see docs/plugins.md)."""

__version__ = "0.1.0"
