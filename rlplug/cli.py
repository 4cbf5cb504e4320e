"""Turning user mistakes into one-line errors, before Hydra launches anything.

:func:`preflight` parses the command line's overrides, checks every config-group choice against
the installed options, then composes and validates every job of the run (every combination of
a multirun sweep): types, keys, ranges, env ids and spaces, plugin names, network construction
and resumable checkpoints. Only then does Hydra start a job, so no worker ever starts on bad input.
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from rlplug import rundir
from rlplug.build import build_algorithm, build_executor, config_dict
from rlplug.envs import probe_env
from rlplug.errors import UserError
from rlplug.plugins import COMPONENTS, broken_plugins, load_config_plugins
from rlplug.registry import suggest
from rlplug.resume import check_resumable, job_config

GROUPS = ("env", "algo", "network", "executor", "logger", "experiment")
MAX_PREFLIGHT_JOBS = 256
_HYDRA_FLAGS_WITHOUT_RUN = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
                            "--shell-completion", "-sc", "--config-path", "-cp", "--config-name",
                            "-cn", "--config-dir", "-cd", "--experimental-rerun", "--version",
                            "--package", "-p", "--resolve")


def group_options(group: str) -> list[str]:
    """The options of a config group: config dataclasses registered in Hydra's ConfigStore, and
    YAML presets in the core's and every plugin's config package."""
    load_config_plugins()
    stored = ConfigStore.instance().repo
    for part in group.split("/"):
        stored = stored.get(part, {}) if isinstance(stored, dict) else {}
    options: set[str] = {name[:-5] for name, node in stored.items()
                         if name.endswith(".yaml") and not isinstance(node, dict)}
    for path in ["pkg://rlplug.conf", *load_config_plugins()]:
        package = path.removeprefix("pkg://")
        try:
            folder = importlib.resources.files(package).joinpath(group)
            options.update(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
            continue
    return sorted(options)


def _check_choice(group: str, value: str) -> None:
    if value in (None, "null") and group == "experiment":
        return
    options = group_options(group)
    if value in options:
        return
    message = _unknown_option(group, str(value), options)
    registry = COMPONENTS.get(group)
    if registry is not None and value in registry.names():
        message += f" ({group} '{value}' is registered but ships no config)"
    broken = [b for b in broken_plugins() if b.startswith("config plugin")]
    if broken:
        message += " Broken plugins: " + "; ".join(broken)
    raise UserError(message)


def explain(exc: BaseException) -> str:
    """One line for a Hydra/OmegaConf composition error, naming the key and the fix."""
    cause: BaseException = exc
    while cause.__cause__ is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    if isinstance(cause, MissingMandatoryValue):
        return f"{cause.full_key} is missing; set it on the command line, e.g. {cause.full_key}=..."
    # a key missing from a structured config (a typo) raises ConfigAttributeError, not KeyError
    if isinstance(cause, ConfigKeyError | ConfigAttributeError) and cause.full_key:
        key = cause.full_key
        parent, _, leaf = key.rpartition(".")
        node = cause.parent_node
        if node is not None and node._metadata.object_type is dict:  # a free-form mapping
            return (f"'{parent}' gets new keys with a +: +{key}=... (or replace it whole with "
                    f"'++{parent}={{{leaf}: ...}}')")
        hint = ""
        if cause.parent_node is not None:
            known = [str(k) for k in cause.parent_node.keys()]
            close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.5)
            hint = f" Did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""
        return (f"unknown key '{key}'.{hint} List the valid keys with "
                f"`python -m rlplug --cfg job`")
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        msg = str(getattr(cause, "msg", cause)).splitlines()[0]
        return f"{cause.full_key}: {msg}; fix the value of {cause.full_key}"
    return str(exc).strip().splitlines()[0]


def _unknown_option(group: str, value: str, options: list[str]) -> str:
    """The one-line error for an option a group lacks: the installed ones and a close match."""
    return (f"unknown {group} '{value}'; installed: {', '.join(options) or 'none'}."
            f"{suggest(value, options)}")


def _parse(overrides: list[str]) -> list[Override]:
    """The command line's overrides, parsed by Hydra; a one-line :class:`UserError` if invalid."""
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise UserError(f"cannot parse the command line: {explain(exc)}") from exc


def _picks_option(override: Override) -> bool:
    """Whether an override chooses a config group's option (``group=option``; not
    ``group@package=...`` nor a deletion ``~group``)."""
    return override.package is None and not override.is_delete()


def _jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """Every job's overrides: the sweep's combinations in a multirun, else the overrides."""
    parsed = _parse(overrides)
    for override in parsed:
        if override.key_or_group in GROUPS and _picks_option(override):
            values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                      else [override.value()])
            for value in values:
                _check_choice(override.key_or_group, value)
    if not multirun:
        sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
        if sweeps:
            raise UserError(f"{sweeps[0]} is a sweep over several values; add --multirun (-m) to "
                            f"run one job per value, or give a single value")
        return [overrides]
    jobs: list[list[str]] = [[]]
    for override in parsed:
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
        prefix = override.get_key_element()
        jobs = [job + [f"{prefix}={v}"] for job in jobs for v in values][:MAX_PREFLIGHT_JOBS]
    return jobs


def _check_hydra_settings(job: list[str], hydra_overrides: list[str], multirun: bool
                          ) -> tuple[bool, DictConfig]:
    """Hydra's own settings: known ``hydra/<group>`` choices (e.g. the launcher), valid
    ``hydra.*`` keys, and an output directory that can be written (and, for a single run, that
    holds no other run's outputs). Returns whether the sweep runs its jobs in parallel processes
    (the joblib launcher), and ``job``'s config: the same composition without the ``hydra`` node,
    which is all ``compose(overrides=job)`` would do again."""
    loader = GlobalHydra.instance().config_loader()
    for override in _parse(hydra_overrides):
        group = override.key_or_group
        if group.startswith("hydra/") and _picks_option(override):
            options = loader.get_group_options(group)
            value = str(override.value())
            if value not in options:
                raise UserError(_unknown_option(group, value, options))
    try:
        cfg = compose(config_name="config", overrides=[*job, *hydra_overrides],
                      return_hydra_config=True)
        out_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        out_dir = Path(str(OmegaConf.select(cfg, out_key)))
        launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(explain(exc)) from exc
    rundir.check_writable(out_dir, out_key)
    if not multirun:
        rundir.check_fresh(out_dir, cfg.get("resume"))
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return multirun and "joblib" in launcher, cfg


def require_components() -> None:
    """A run needs an algorithm, a network and an executor plugin: without one, say in one line
    what to install (the core ships none; the A3C plugin has all three)."""
    missing = [group for group, registry in COMPONENTS.items() if not registry.entries()]
    if missing:
        kinds = ", ".join(missing[:-1]) + (" or " if len(missing) > 1 else "") + missing[-1]
        raise UserError(f"no {kinds} plugin is installed (a run needs an algo, a network and an "
                        f"executor); install the A3C plugin: pip install rlplug-a3c (from a "
                        f"source checkout: pip install -e plugins/a3c)")


def preflight(argv: list[str]) -> bool:
    """Validate the command line as Hydra would run it; raise :class:`UserError` on bad input.
    Returns True for a sweep whose jobs run in parallel processes (``hydra/launcher=joblib``)."""
    require_components()
    if any(a.split("=")[0] == "--experimental-rerun" for a in argv):
        # Hydra would unpickle that file: code in it would run. rlplug never writes one.
        raise UserError("--experimental-rerun is not supported (it unpickles a file, which can "
                        "run code); run again with the overrides in <run dir>/.hydra/"
                        "overrides.yaml, or continue a run with resume=<run dir>")
    if any(a.split("=")[0] in _HYDRA_FLAGS_WITHOUT_RUN for a in argv):
        return False
    multirun = any(a in ("-m", "--multirun") for a in argv)
    is_hydra = ("hydra.", "hydra/", "+hydra", "++hydra", "~hydra")
    overrides = [a for a in argv if not a.startswith("-") and not a.startswith(is_hydra)]
    hydra_overrides = [a for a in argv if a.startswith(is_hydra)]
    checked: set[str] = set()
    parallel = False
    rundir.register_resolvers()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        for index, job in enumerate(_jobs(overrides, multirun)):
            try:
                if index == 0:
                    parallel, cfg = _check_hydra_settings(job, hydra_overrides, multirun)
                else:
                    cfg = compose(config_name="config", overrides=job)
            except (HydraException, OmegaConfBaseException) as exc:
                raise UserError(explain(exc)) from exc
            try:
                run = job_config(cfg, job)  # with resume=: the checkpoint's config + overrides
            except OmegaConfBaseException as exc:
                raise UserError(explain(exc)) from exc
            except ValueError as exc:  # a plugin's own __post_init__ check
                raise UserError(str(exc).splitlines()[0]) from exc
            resolved = config_dict(run)
            key = OmegaConf.to_yaml({k: resolved[k] for k in
                                     ("env", "network", "algo", "executor", "resume")})
            if key in checked:
                continue
            checked.add(key)
            spec = probe_env(run.env)
            for group, registry in COMPONENTS.items():
                registry.get(getattr(run, group).name)
            algo = build_algorithm(run, spec)
            build_executor(run)
            if run.resume:
                check_resumable(run, algo)
    return parallel
