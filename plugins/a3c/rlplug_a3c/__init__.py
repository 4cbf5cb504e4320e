"""A3C (Mnih et al. 2016, arXiv 1602.01783) for rlplug."""

__version__ = "0.1.0"
