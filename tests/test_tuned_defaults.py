"""Tuned defaults per (algorithm, env): choosing an env preset brings the selected algorithm's
tuned settings for it, contributed by the algorithm's plugin through the optional
``tuned: ${algo}_${env}`` and ``tuned_network: ${algo}_${env}_${network}`` defaults entries of
conf/config.yaml. The command line and experiment presets win; envs without a tuned file and
algorithms that ship none get the generic defaults.

In-process tests compose with real Hydra and the installed A3C plugin; the third-party tests run
``python -m rlplug --cfg job`` in a subprocess with a fake distribution on PYTHONPATH (so the
global registries are never polluted).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from rlplug.build import build_algorithm
from rlplug.cli import group_options
from rlplug.config import to_run_config
from rlplug.envs import probe_env
from rlplug.plugins import install_search_path
from rlplug_a3c.configs import A3CConfig, FeedForwardConfig

TUNED_PACKAGE = "rlplug_a3c.conf"


def compose_cfg_node(*overrides: str) -> DictConfig:
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def compose_cfg(*overrides: str) -> dict[str, Any]:
    return OmegaConf.to_container(compose_cfg_node(*overrides), resolve=True)  # type: ignore[return-value]


def load_yaml(text: str) -> dict[str, Any]:
    """YAML as Hydra reads it (OmegaConf's loader: ``1e-3`` is a float, unlike PyYAML's)."""
    return OmegaConf.to_container(OmegaConf.create(text))  # type: ignore[return-value]


def tuned_file(group: str, name: str) -> dict[str, Any]:
    return load_yaml(importlib.resources.files(TUNED_PACKAGE).joinpath(group, f"{name}.yaml")
                     .read_text())


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"algo.lr": 2e-4, ...}`` for every leaf of a nested dict."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def value_at(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def generic(section: str) -> dict[str, Any]:
    cls = {"algo": A3CConfig, "network": FeedForwardConfig}[section]
    return dataclasses.asdict(cls())


TUNED_ENVS = [n.removeprefix("a3c_") for n in group_options("tuned") if n.startswith("a3c_")]


def test_a3c_ships_tuned_defaults_for_the_solvable_env_presets() -> None:
    assert {"pendulum", "cartpole", "acrobot"} <= set(TUNED_ENVS)
    assert set(TUNED_ENVS) <= set(group_options("env"))


@pytest.mark.parametrize("env", TUNED_ENVS)
def test_env_preset_alone_yields_the_tuned_settings(env: str) -> None:
    cfg = compose_cfg(f"env={env}")
    tuned = leaves(tuned_file("tuned", f"a3c_{env}"))
    net_name = f"a3c_{env}_ff"
    if net_name in group_options("tuned_network"):
        tuned.update(leaves(tuned_file("tuned_network", net_name)))
    differs = 0
    for key, value in tuned.items():
        assert value_at(cfg, key) == pytest.approx(value), key
        section, _, leaf = key.partition(".")
        if section in ("algo", "network") and generic(section)[leaf] != pytest.approx(value):
            differs += 1
    assert differs, "a tuned file that changes no algorithm or network key tests nothing"
    # and it is a valid run config that builds
    run = to_run_config(compose_cfg_node(f"env={env}"))
    build_algorithm(run, probe_env(run.env))


def test_pendulum_tuned_values() -> None:
    """The headline command's settings, spelled out (the values the README's results are for)."""
    cfg = compose_cfg("env=pendulum")
    assert cfg["env"]["normalize_obs"] is True
    assert cfg["algo"]["gamma"] == 0.95 and cfg["algo"]["critic_lr_scale"] == 5.0
    assert cfg["algo"]["envs_per_worker"] == 32 and cfg["algo"]["lr_schedule"] == "linear"
    assert cfg["algo"]["reward_scale"] == 0.125 and cfg["algo"]["reward_offset"] == 8.0
    assert cfg["network"]["activation"] == "relu"
    assert cfg["total_steps"] == tuned_file("tuned", "a3c_pendulum")["total_steps"]


def test_command_line_beats_the_tuned_settings() -> None:
    cfg = compose_cfg("env=pendulum", "algo.gamma=0.5", "total_steps=1234",
                      "network.hidden_sizes=[8]", "env.normalize_obs=false")
    assert cfg["algo"]["gamma"] == 0.5 and cfg["total_steps"] == 1234
    assert cfg["network"]["hidden_sizes"] == [8] and cfg["env"]["normalize_obs"] is False
    assert cfg["algo"]["critic_lr_scale"] == 5.0  # the keys not overridden stay tuned


def test_tuned_settings_can_be_left_out() -> None:
    cfg = compose_cfg("env=pendulum", "~tuned", "~tuned_network")
    assert cfg["algo"] == generic("algo") and cfg["network"] == generic("network")


def test_another_network_keeps_the_tuned_algorithm_settings_and_composes() -> None:
    """tuned/ sets no network key, so network=lstm (which has no hidden_sizes) still composes;
    the feed-forward layers of tuned_network/a3c_pendulum_ff.yaml are not applied."""
    node = compose_cfg_node("env=pendulum", "network=lstm")
    assert node.algo.gamma == 0.95 and node.network.name == "lstm"
    run = to_run_config(node)
    build_algorithm(run, probe_env(run.env))


def test_tuned_files_set_no_network_key() -> None:
    for name in group_options("tuned"):
        if name.startswith("a3c_"):
            assert "network" not in tuned_file("tuned", name), name


def test_env_without_tuned_file_gets_the_generic_defaults() -> None:
    assert "a3c_mountaincar_continuous" not in group_options("tuned")
    cfg = compose_cfg("env=mountaincar_continuous")
    assert cfg["algo"] == generic("algo") and cfg["network"] == generic("network")
    assert cfg["env"]["normalize_obs"] is False
    assert cfg["total_steps"] == 300_000  # the env preset's own budget


@pytest.mark.parametrize("env,budget", [("cartpole", None), ("pendulum", None), ("acrobot", None),
                                        ("mountaincar_continuous", 300_000)])
def test_every_env_preset_has_a_budget(env: str, budget: int | None) -> None:
    """Each env preset carries a budget for its task (not the config's generic 100k); A3C's
    tuned file may replace it with its own."""
    preset = load_yaml(importlib.resources.files("rlplug.conf").joinpath(
        "env", f"{env}.yaml").read_text())
    assert preset["total_steps"] > 100_000
    with_a3c = compose_cfg(f"env={env}")["total_steps"]
    expected = budget or tuned_file("tuned", f"a3c_{env}").get("total_steps", preset["total_steps"])
    assert with_a3c == expected


def test_experiment_presets_live_in_the_plugin_not_in_the_core() -> None:
    core = importlib.resources.files("rlplug.conf")
    assert not core.joinpath("experiment").is_dir()
    for path in core.joinpath("env").iterdir():
        if path.name.endswith(".yaml"):
            assert "algo" not in load_yaml(path.read_text()), path.name
    assert {"pendulum", "cartpole"} <= set(group_options("experiment"))


def test_experiment_presets_do_not_repeat_the_tuned_settings() -> None:
    for name in group_options("experiment"):
        if f"a3c_{name}" not in group_options("tuned"):
            continue
        preset = leaves(tuned_file("experiment", name))
        tuned = leaves(tuned_file("tuned", f"a3c_{name}"))
        assert not set(preset) & set(tuned) - {"defaults"}, name
        assert compose_cfg(f"experiment={name}")["algo"] == compose_cfg(f"env={name}")["algo"]


# -- third-party distributions ---------------------------------------------------------------
FAKE_PLUGIN = """\
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class OtherAlgoConfig:
    name: str = "otheralgo"
    lr: float = 0.123
    gamma: float = 0.777


def register():
    ConfigStore.instance().store(group="algo", name="otheralgo", node=OtherAlgoConfig)
    return "pkg://tuned_fake_plugin.conf"
"""

# A study preset of the third-party distribution that sets keys A3C's tuned file sets too.
FAKE_EXPERIMENT = """\
# @package _global_
defaults:
  - override /env: pendulum
total_steps: 4321
algo:
  gamma: 0.55
network:
  hidden_sizes: [7, 7]
"""


@pytest.fixture
def fake_plugin(make_distribution):
    return make_distribution("tuned-fake-plugin", "0.1", {
        "rlplug.configs": {"tunedfake": "tuned_fake_plugin:register"}}, {
        "tuned_fake_plugin/__init__.py": FAKE_PLUGIN,
        "tuned_fake_plugin/conf/__init__.py": "",
        "tuned_fake_plugin/conf/experiment/fake_study.yaml": FAKE_EXPERIMENT})


def cfg_job(run_rlplug, *args: str, pythonpath=()) -> dict[str, Any]:
    proc = run_rlplug("--cfg", "job", *args, pythonpath=pythonpath)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_yaml(proc.stdout)


def test_third_party_algorithm_without_tuned_files_is_unaffected(fake_plugin, run_rlplug) -> None:
    cfg = cfg_job(run_rlplug, "algo=otheralgo", "env=pendulum", pythonpath=(fake_plugin.root,))
    assert cfg["algo"] == {"name": "otheralgo", "lr": 0.123, "gamma": 0.777}
    assert cfg["network"] == generic("network")  # not A3C's tuned Pendulum network
    assert cfg["env"]["normalize_obs"] is False
    assert cfg["total_steps"] == 500_000  # the env preset's budget
    info = run_rlplug("--info", "defaults", "algo=otheralgo", "env=pendulum",
                      pythonpath=(fake_plugin.root,))
    assert info.returncode == 0 and "tuned/" not in info.stdout, info.stdout[-2000:]


def test_experiment_preset_beats_the_tuned_settings(fake_plugin, run_rlplug) -> None:
    cfg = cfg_job(run_rlplug, "experiment=fake_study", pythonpath=(fake_plugin.root,))
    assert cfg["env"]["id"] == "Pendulum-v1"
    assert cfg["total_steps"] == 4321 and cfg["algo"]["gamma"] == 0.55
    assert cfg["network"]["hidden_sizes"] == [7, 7]
    assert cfg["algo"]["critic_lr_scale"] == 5.0  # the rest stays tuned
    # ... and the command line beats the experiment
    cfg = cfg_job(run_rlplug, "experiment=fake_study", "algo.gamma=0.44",
                  pythonpath=(fake_plugin.root,))
    assert cfg["algo"]["gamma"] == 0.44


def test_info_defaults_shows_where_the_settings_came_from(run_rlplug) -> None:
    proc = run_rlplug("--info", "defaults", "env=pendulum")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if entry in line)
             for entry in ("env/pendulum", "network/ff", "tuned/a3c_pendulum",
                           "tuned_network/a3c_pendulum_ff")]
    assert order == sorted(order)
