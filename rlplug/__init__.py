"""rlplug: a minimal, registry-based RL framework. Algorithms, networks and executors are plugins.

Public API: the contracts (:mod:`rlplug.contracts`), the registries (:mod:`rlplug.plugins`),
:func:`rlplug.run.train` and :func:`rlplug.envs.make_env`.
"""

__version__ = "0.1.0"

import sys as _sys

if _sys.argv[:1] == ["-m"]:  # `python -m rlplug...`: Ctrl-C while the CLI imports exits quietly
    from rlplug.interrupts import exit_quietly_while_importing as _quiet

    _quiet()
