"""Entry-point discovery: the installed A3C plugin, and fake distributions written to a temporary
directory (one good, one broken on import, two that claim the same name).

In-process tests use fresh Registry instances; CLI tests run ``python -m rlplug`` in a subprocess
with the fake distribution on PYTHONPATH, so the global registries are never polluted.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import uuid
from pathlib import Path

import pytest

from rlplug.cli import group_options
from rlplug.contracts import Algorithm, Executor, Network, check_subclass
from rlplug.errors import PluginError
from rlplug.plugins import COMPONENTS, CONFIGS
from rlplug.registry import Registry

BROKEN_MESSAGE = "fakeplug is broken on purpose"
HOOK_MESSAGE = "config hook broken on purpose"

GOOD_NETWORK = """\
import torch

from rlplug.contracts import Network


class GoodNet(Network):
    \"\"\"A linear actor-critic from a third-party distribution.\"\"\"

    def __init__(self, obs_shape, policy_dim, cfg):
        super().__init__()
        self.policy = torch.nn.Linear(obs_shape[0], policy_dim)
        self.value = torch.nn.Linear(obs_shape[0], 1)

    def initial_state(self, batch_size):
        return ()

    def forward(self, obs, state, episode_starts):
        return self.policy(obs), self.value(obs).squeeze(-1), ()
"""

CONFIG_HOOK = """\
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class GoodNetConfig:
    name: str = "fakegood"


@dataclass
class BrokenNetConfig:
    name: str = "brokennet"


def register():
    cs = ConfigStore.instance()
    cs.store(group="network", name="fakegood", node=GoodNetConfig)
    cs.store(group="network", name="brokennet", node=BrokenNetConfig)
    return "pkg://{package}.conf"


def bad_register():
    raise RuntimeError("{hook_message}")
"""


@pytest.fixture
def fake_plugin(make_distribution):
    """A third-party distribution with a working network (with config), a network whose module
    raises on import (with config too, so it can be selected), a config hook, and a second config
    hook that raises when called."""
    package = f"fakeplug_{uuid.uuid4().hex[:8]}"
    return make_distribution(
        "fake-rlplug-plugin", "1.2.3",
        {"rlplug.networks": {"fakegood": f"{package}.good:GoodNet",
                             "brokennet": f"{package}.broken:BrokenNet"},
         "rlplug.configs": {"fakeplug": f"{package}.configs:register",
                            "badhook": f"{package}.configs:bad_register"}},
        {f"{package}/__init__.py": "",
         f"{package}/good.py": GOOD_NETWORK,
         f"{package}/broken.py": f"raise RuntimeError({BROKEN_MESSAGE!r})\n",
         f"{package}/configs.py": CONFIG_HOOK.format(package=package, hook_message=HOOK_MESSAGE),
         f"{package}/conf/__init__.py": ""})


def _fresh_networks() -> Registry[type[Network]]:
    return Registry("network", "rlplug.networks", check_subclass(Network))


# -- the installed plugin --------------------------------------------------------------------------
@pytest.mark.parametrize("kind,group,base,expected", [
    ("algo", "rlplug.algos", Algorithm, {"a3c": "rlplug_a3c.algorithm:A3C"}),
    ("network", "rlplug.networks", Network,
     {"ff": "rlplug_a3c.networks.feedforward:FeedForwardActorCritic",
      "lstm": "rlplug_a3c.networks.lstm:LSTMActorCritic"}),
    ("executor", "rlplug.executors", Executor,
     {"thread": "rlplug_a3c.executors.thread:ThreadExecutor",
      "process": "rlplug_a3c.executors.process:ProcessExecutor",
      "serial": "rlplug_a3c.executors.serial:SerialExecutor"}),
])
def test_installed_a3c_plugin_is_discovered_with_its_distribution(kind, group, base, expected) -> None:
    registry = Registry(kind, group, check_subclass(base))
    entries = {e.name: e for e in registry.entries() if e.distribution == "rlplug-a3c"}
    assert {name: e.target for name, e in entries.items()} == expected
    version = metadata.version("rlplug-a3c")
    for name, entry in entries.items():
        assert entry.version == version
        cls = registry.get(name)
        assert issubclass(cls, base)
        assert f"{cls.__module__}:{cls.__qualname__}" == expected[name]
    assert COMPONENTS[kind].group == group  # the global registry reads the same group


def test_installed_a3c_plugin_ships_its_configs() -> None:
    registry = Registry("config plugin", "rlplug.configs", CONFIGS._check)
    assert registry.get("a3c")() == "pkg://rlplug_a3c.conf"
    assert registry.entries()[0].distribution == "rlplug-a3c"
    assert "a3c" in group_options("algo")
    assert {"ff", "lstm"} <= set(group_options("network"))
    assert {"thread", "process"} <= set(group_options("executor"))


# -- a fake third-party distribution ---------------------------------------------------------------
def test_fake_distribution_entries_appear_next_to_the_installed_ones(fake_plugin, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(fake_plugin.root))
    registry = _fresh_networks()
    assert {"ff", "lstm", "fakegood", "brokennet"} <= set(registry.names())
    good = next(e for e in registry.entries() if e.name == "fakegood")
    assert (good.distribution, good.version) == ("fake-rlplug-plugin", "1.2.3")
    assert registry.get("fakegood").__name__ == "GoodNet"


def test_a_plugin_that_raises_on_import_breaks_nothing_else(fake_plugin, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(fake_plugin.root))
    registry = _fresh_networks()
    with pytest.raises(PluginError) as info:
        registry.get("brokennet")
    message = str(info.value)
    assert "\n" not in message
    assert ("network 'brokennet' from fake-rlplug-plugin 1.2.3 cannot be used: "
            f"RuntimeError: {BROKEN_MESSAGE}") == message
    assert "Traceback" in (registry.resolve("brokennet").error_traceback or "")
    # the others still load, before and after
    assert registry.get("ff").__name__ == "FeedForwardActorCritic"
    assert registry.get("fakegood").__name__ == "GoodNet"
    with pytest.raises(PluginError, match=BROKEN_MESSAGE):  # and it keeps failing the same way
        registry.get("brokennet")


def test_list_shows_fake_plugins_and_marks_the_broken_one(fake_plugin, run_rlplug) -> None:
    proc = run_rlplug("--list", pythonpath=(fake_plugin.root,))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()

    def line(name: str) -> str:
        found = [x for x in lines if x.split()[:1] == [name]]
        assert len(found) >= 1, f"{name} missing from:\n{proc.stdout}"
        return found[0]

    assert line("fakegood").split()[1:3] == ["fake-rlplug-plugin", "1.2.3"]
    assert line("fakegood").endswith("[ok]")
    broken = line("brokennet")
    assert broken.split()[1:3] == ["fake-rlplug-plugin", "1.2.3"]
    assert f"[BROKEN: RuntimeError: {BROKEN_MESSAGE}]" in broken
    assert line("fakeplug").endswith("[ok]")
    assert line("badhook").endswith(f"[BROKEN: RuntimeError: {HOOK_MESSAGE}]")
    for name in ("a3c", "ff", "lstm", "thread", "process"):
        assert line(name).endswith("[ok]"), line(name)


def test_list_columns_stay_aligned_for_long_names(make_distribution, run_rlplug) -> None:
    long_name = "a_network_with_a_name_much_longer_than_any_column_width"
    dist = make_distribution(
        "a-third-party-distribution-with-a-very-long-name", "10.20.30rc1",
        {"rlplug.networks": {long_name: "longplug.net:LongNet"}},
        {"longplug/__init__.py": "", "longplug/net.py": GOOD_NETWORK.replace("GoodNet", "LongNet")})
    proc = run_rlplug("--list", pythonpath=(dist.root,))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines()
            if line.startswith("  ") and "(none installed)" not in line]
    assert any(line.split()[0] == long_name for line in rows), proc.stdout
    # name, distribution, version and target start at the same column on every row
    starts = {tuple(m.start() for m in list(re.finditer(r"\S+", line))[:4]) for line in rows}
    assert len(starts) == 1, "columns are not aligned:\n" + proc.stdout


def test_help_lists_only_real_options(run_rlplug) -> None:
    proc = run_rlplug("--help")
    assert proc.returncode == 0, proc.stderr
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    options = {line.split(":")[0]: line.split(":", 1)[1].replace(" ", "").split(",")
               for line in groups.splitlines() if ":" in line and not line.startswith("Compose")}
    assert {"thread", "process"} <= set(options["executor"]), groups
    assert {"ff", "lstm"} <= set(options["network"]), groups
    assert "_schema" not in proc.stdout and "schema" not in groups, groups


def test_selecting_the_broken_plugin_is_a_one_line_error(fake_plugin, run_rlplug, one_line_error,
                                                         tmp_path) -> None:
    proc = run_rlplug("network=brokennet", "env=cartpole", "executor=thread", "total_steps=300",
                      "logger.mode=disabled", "progress=false", pythonpath=(fake_plugin.root,))
    line = one_line_error(proc)
    assert "brokennet" in line and "fake-rlplug-plugin" in line and BROKEN_MESSAGE in line
    assert not (tmp_path / "outputs").exists()


def test_a_third_party_network_trains_next_to_broken_plugins(fake_plugin, run_rlplug, tmp_path) -> None:
    # the same distribution also has a network that fails to import and a config hook that raises
    run_dir = tmp_path / "run"
    proc = run_rlplug("network=fakegood", "env=cartpole", "executor=thread", "executor.workers=1",
                      "total_steps=300", "logger.mode=disabled", "progress=false",
                      f"hydra.run.dir={run_dir}", pythonpath=(fake_plugin.root,))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 300
    assert summary["config"]["network"]["name"] == "fakegood"


# -- one name, two distributions -------------------------------------------------------------------
def _two_claims(make_distribution, group: str, name: str) -> tuple[Path, Path]:
    first = make_distribution("first-claim", "1.0", {group: {name: "first_claim_mod:Thing"}})
    second = make_distribution("second-claim", "2.0", {group: {name: "second_claim_mod:Thing"}})
    return first.root, second.root


def test_two_distributions_registering_one_name_is_an_error_naming_both(make_distribution,
                                                                        monkeypatch) -> None:
    group = f"rlplug_test.{uuid.uuid4().hex[:8]}"
    for root in _two_claims(make_distribution, group, "same"):
        monkeypatch.syspath_prepend(str(root))
    registry: Registry[type] = Registry("algo", group)
    with pytest.raises(PluginError) as info:
        registry.names()
    message = str(info.value)
    assert "\n" not in message
    assert "algo 'same' is registered twice" in message
    assert "first-claim" in message and "second-claim" in message
    with pytest.raises(PluginError, match="registered twice"):  # every time, not just the first
        registry.get("same")


def test_cli_reports_a_duplicate_of_an_installed_name_in_one_line(make_distribution, run_rlplug,
                                                                  one_line_error, tmp_path) -> None:
    dup = make_distribution("dup-a3c", "0.1", {"rlplug.algos": {"a3c": "dup_a3c_mod:A3C"}})
    line = one_line_error(run_rlplug("--list", pythonpath=(dup.root,)))
    assert "'a3c' is registered twice" in line and "rlplug-a3c" in line and "dup-a3c" in line
    line = one_line_error(run_rlplug("env=cartpole", "total_steps=300", "logger.mode=disabled",
                                     "progress=false", pythonpath=(dup.root,)))
    assert "rlplug-a3c" in line and "dup-a3c" in line
    assert not (tmp_path / "outputs").exists()
