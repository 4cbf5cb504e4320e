"""Hydra configs shipped as package data (YAML presets)."""
