"""rlplug: a minimal, registry-based RL framework. Algorithms, networks and executors are plugins.

Public API: the contracts (:mod:`rlplug.contracts`), the registries (:mod:`rlplug.plugins`),
:func:`rlplug.run.train` and :func:`rlplug.envs.make_env`.
"""

__version__ = "0.1.0"
