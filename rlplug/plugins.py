"""Every registry rlplug has, in one place, and how plugins reach Hydra.

Entry-point groups a distribution may declare (in its ``pyproject.toml``):

* ``rlplug.algos``     -> an :class:`rlplug.contracts.Algorithm` subclass
* ``rlplug.networks``  -> an :class:`rlplug.contracts.Network` subclass
* ``rlplug.executors`` -> an :class:`rlplug.contracts.Executor` subclass
* ``rlplug.envs``      -> a gymnasium env: the entry point's NAME is a gymnasium id (e.g.
  ``MyEnv-v0``), its value a ``gymnasium.Env`` subclass or a factory function returning an env.
  :func:`register_env_plugins` registers every id with gymnasium (lazily: gymnasium imports the
  ``"module:attr"`` only when the env is made); ``rlplug.envs.make_env`` calls it, in the main
  process and in every worker. Env presets (``env/*.yaml``) ship through ``rlplug.configs``.
* ``rlplug.configs``   -> a function ``register() -> str`` that stores the plugin's config
  dataclasses in Hydra's ConfigStore and returns its config search path (e.g.
  ``"pkg://my_plugin.conf"``), which the core adds to Hydra's search path.

Algorithm, network, executor and env plugins are imported only when selected.
"""

from __future__ import annotations

import importlib.metadata as metadata
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

from rlplug.config import register_core_schemas
from rlplug.contracts import Algorithm, Executor, Network, check_subclass
from rlplug.registry import Registry


def _check_config_hook(obj: object) -> None:
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable; an rlplug.configs entry point must be a function")


def _check_env_creator(obj: object) -> None:
    if isinstance(obj, type) and not issubclass(obj, gym.Env):
        raise TypeError(f"{obj.__module__}.{obj.__qualname__} is not a gymnasium.Env subclass")
    if not callable(obj):
        raise TypeError(f"{obj!r} is neither a gymnasium.Env subclass nor a function returning an env")


ALGOS: Registry[type[Algorithm]] = Registry("algo", "rlplug.algos", check_subclass(Algorithm))
NETWORKS: Registry[type[Network]] = Registry("network", "rlplug.networks", check_subclass(Network))
EXECUTORS: Registry[type[Executor]] = Registry("executor", "rlplug.executors", check_subclass(Executor))
CONFIGS: Registry[Callable[[], str]] = Registry("config plugin", "rlplug.configs", _check_config_hook)
# gymnasium id -> env class or factory; reaches gymnasium through register_env_plugins()
ENVS: Registry[Callable[..., Any]] = Registry("env", "rlplug.envs", _check_env_creator)

COMPONENTS = {"algo": ALGOS, "network": NETWORKS, "executor": EXECUTORS}
"""Config group -> registry; a group's ``name`` key selects the registered object."""

_search_paths: list[str] = []


def load_config_plugins() -> list[str]:
    """Register all schemas (core and plugins) and return the plugins' config search paths.

    Idempotent. A plugin whose config hook fails is skipped: its error shows in ``--list`` and when
    one of its options is selected.
    """
    register_core_schemas()
    if not _search_paths:
        for entry in CONFIGS.entries():
            entry = CONFIGS.resolve(entry.name)
            if entry.error is not None:
                continue
            try:  # calling the hook runs plugin code too: a failure must not break other plugins
                path = entry.obj()
                if not isinstance(path, str):
                    raise TypeError(f"returned {path!r}, not a config search path string")
            except Exception as exc:
                entry.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                entry.error_traceback = traceback.format_exc()
                continue
            if path not in _search_paths:
                _search_paths.append(path)
    return list(_search_paths)


class RlplugSearchPathPlugin(SearchPathPlugin):
    """Adds every installed plugin's config directory to Hydra's search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for path in load_config_plugins():
            search_path.append(provider="rlplug-plugin", path=path)


def install_search_path() -> None:
    """Register the search-path plugin with Hydra (explicitly: no ``hydra_plugins`` namespace scan)."""
    load_config_plugins()
    Plugins.instance().register(RlplugSearchPathPlugin)


def _entry_point_name(entry_point: Any) -> str:
    """gymnasium's entry point as ``"module:attr"`` (it may be the string or the object)."""
    if isinstance(entry_point, str):
        return entry_point
    return (f"{getattr(entry_point, '__module__', '?')}:"
            f"{getattr(entry_point, '__qualname__', repr(entry_point))}")


def register_env_plugins(registry: Registry[Callable[..., Any]] | None = None) -> None:
    """Register every ``rlplug.envs`` id with gymnasium, importing nothing (gymnasium imports the
    ``"module:attr"`` entry point when the env is made). Idempotent; called by every make_env.

    An id gymnasium already has from elsewhere (a built-in env, a module that registered it) or
    cannot register (not a valid id) is not registered: the entry is marked broken, which shows in
    ``--list`` and when the id is made; every other env still works. ``registry``: ``ENVS``.
    """
    for entry in (ENVS if registry is None else registry).entries():
        if entry.error is not None:
            continue
        known = gym.registry.get(entry.name)
        where = None if known is None else _entry_point_name(known.entry_point)
        if where == entry.target:
            continue  # registered already (by an earlier call, or by the plugin's own module)
        if known is not None:
            entry.loaded, entry.error = True, (
                f"gymnasium already has an env with id '{entry.name}' ({where}); give the plugin's "
                f"env another id, e.g. with a namespace: '{entry.distribution}/{entry.name}'")
            continue
        try:
            gym.register(entry.name, entry_point=entry.target)
        except Exception as exc:  # e.g. a malformed id, or an unversioned id next to versioned ones
            entry.loaded = True
            entry.error = f"gymnasium cannot register this id: {exc}".splitlines()[0]


def broken_plugins() -> list[str]:
    """One line per plugin entry point that failed to import (after they were resolved)."""
    lines = []
    for registry in (CONFIGS, *COMPONENTS.values(), ENVS):
        for entry in registry.entries():
            if entry.loaded and entry.error is not None:
                lines.append(f"{registry.kind} '{entry.name}' from {entry.distribution} "
                             f"{entry.version}: {entry.error}")
    return lines


def plugin_listing() -> str:
    """Every installed plugin with its distribution and version, importing each to check it."""
    load_config_plugins()  # runs the config hooks, so a hook that fails shows as BROKEN
    register_env_plugins()  # so an id that clashes with one gymnasium already has shows as BROKEN
    sections = []
    for registry in (*COMPONENTS.values(), ENVS, CONFIGS):
        entries = [registry.resolve(entry.name) for entry in registry.entries()]
        sections.append((registry.group, [
            (e.name, e.distribution, e.version, e.target,
             "ok" if e.error is None else f"BROKEN: {e.error}") for e in entries]))
    # One width per column over every section, so the columns line up however long a name is.
    rows = [row for _, section in sections for row in section]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    lines = []
    for group, section in sections:
        lines.append(f"{group}:")
        if not section:
            lines.append("  (none installed)")
        for *cells, status in section:
            columns = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            lines.append(f"  {columns}  [{status}]")
    return "\n".join(lines)


def distributions_with_plugins() -> dict[str, str]:
    """Distribution name -> version, for every distribution that declares an rlplug entry point."""
    found: dict[str, str] = {}
    for registry in (*COMPONENTS.values(), ENVS, CONFIGS):
        for entry in registry.entries():
            found[entry.distribution] = entry.version
    try:
        found.setdefault("rlplug", metadata.version("rlplug"))
    except metadata.PackageNotFoundError:
        pass
    return found
