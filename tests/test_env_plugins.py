"""Environments as plugins: the ``rlplug.envs`` entry-point group, ``env.id=module:Class``, and
success reporting (``info["is_success"]``) in episode rows, the progress bar, W&B and the summary.

The env plugin is a fake distribution written to a temporary directory (a ``*.dist-info`` folder
plus modules, as pip installs it). CLI tests run ``python -m rlplug`` in a subprocess with it on
PYTHONPATH; in-process tests read it through a fresh :class:`Registry`, never the global one.
"""

from __future__ import annotations

import json
import sys
import uuid
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from rlplug import messages
from rlplug.config import EnvConfig
from rlplug.counters import SharedCounters
from rlplug.envs import make_env
from rlplug.errors import PluginError, UserError
from rlplug.loggers.wandb_logger import row_to_wandb
from rlplug.monitor import Monitor, ReturnStats
from rlplug.plugins import ENVS, _check_env_creator, register_env_plugins
from rlplug.registry import Registry

BROKEN_MESSAGE = "fake env plugin broken on purpose"
QUIET = ("logger.mode=disabled", "progress=false", "checkpoint.every_steps=0")

# A walk to the right end of a short line; reaching it is a success (the gymnasium convention:
# info["is_success"] on the last step). Importing the module also registers "WalkReg-v0", as
# gymnasium's own "module:EnvId" convention expects, and counts its imports.
WALK_MODULE = """\
import gymnasium as gym
import numpy as np

IMPORTS = [1]


class Walk(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, length=3, max_steps=12):
        self.length, self.max_steps = length, max_steps
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = self.steps = 0

    def _obs(self):
        return np.array([self.position / self.length, self.steps / self.max_steps], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.steps = 0
        return self._obs(), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if int(action) == 1 else -1))
        self.steps += 1
        terminated = self.position == self.length
        truncated = not terminated and self.steps >= self.max_steps
        info = {"is_success": terminated} if terminated or truncated else {}
        return self._obs(), float(terminated) - 0.01, terminated, truncated, info


def make_walk(**kwargs):
    return Walk(**kwargs)


NOT_AN_ENV = 42

gym.register("WalkReg-v0", entry_point=Walk)
"""

CONFIG_HOOK = """\
def register():
    return "pkg://{package}.conf"
"""

WALK_PRESET = """\
id: FakeWalk-v0
kwargs: {length: 3}
obs_indices: null
normalize_obs: false
max_episode_steps: null
"""


@pytest.fixture
def env_plugin(make_distribution):
    """``fake-env-plugin 1.0``: ``FakeWalk-v0`` (a class), ``FakeWalkMade-v0`` (a factory),
    ``FakeBroken-v0`` (its module raises on import), ``CartPole-v1`` (clashes with gymnasium's
    own id), and the preset ``env=fakewalk`` through its config hook."""
    package = f"fakeenvs_{uuid.uuid4().hex[:8]}"
    return make_distribution(
        "fake-env-plugin", "1.0",
        {"rlplug.envs": {"FakeWalk-v0": f"{package}.walk:Walk",
                         "FakeWalkMade-v0": f"{package}.walk:make_walk",
                         "FakeBroken-v0": f"{package}.broken:Broken",
                         "CartPole-v1": f"{package}.walk:Walk"},
         "rlplug.configs": {"fakeenvs": f"{package}.configs:register"}},
        {f"{package}/__init__.py": "",
         f"{package}/walk.py": WALK_MODULE.replace("WalkReg-v0", f"{package}Reg-v0"),
         f"{package}/broken.py": f"raise RuntimeError({BROKEN_MESSAGE!r})\n",
         f"{package}/configs.py": CONFIG_HOOK.format(package=package),
         f"{package}/conf/__init__.py": "",
         f"{package}/conf/env/fakewalk.yaml": WALK_PRESET})


@pytest.fixture
def walk_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A plain module (no distribution) with env classes, on sys.path here and in spawned
    workers (and on PYTHONPATH for CLI subprocesses); returns (directory, module name)."""
    name = f"walkmod_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / f"{name}.py").write_text(WALK_MODULE.replace("WalkReg-v0", f"{name}Reg-v0"))
    (folder / f"{name}_broken.py").write_text(f"raise KeyError({BROKEN_MESSAGE!r})\n")
    monkeypatch.syspath_prepend(str(folder))
    yield folder, name
    for module in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[module]
    for env_id in [i for i in gym.registry if i.startswith(name)]:
        del gym.registry[env_id]


def _fresh_envs() -> Registry:
    return Registry("env", "rlplug.envs", _check_env_creator)


def _listed(stdout: str, name: str) -> str:
    found = [line for line in stdout.splitlines() if line.split()[:1] == [name]]
    assert found, f"{name} missing from:\n{stdout}"
    return found[0]


# -- registration with gymnasium -------------------------------------------------------------------
def test_env_plugins_are_registered_with_gymnasium_lazily_and_once(env_plugin, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(env_plugin.root))
    package = env_plugin.modules[0]
    registry = _fresh_envs()
    try:
        register_env_plugins(registry)
        assert f"{package}.walk" not in sys.modules, "registering must not import the plugin"
        assert gym.registry["FakeWalk-v0"].entry_point == f"{package}.walk:Walk"
        assert gym.registry["FakeWalkMade-v0"].entry_point == f"{package}.walk:make_walk"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "Overriding environment" warning: idempotent
            register_env_plugins(registry)
        env = gym.make("FakeWalkMade-v0", length=5)
        assert env.unwrapped.length == 5 and f"{package}.walk" in sys.modules
        # gymnasium's own CartPole-v1 stays; the plugin's claim on the id is marked broken
        assert gym.registry["CartPole-v1"].entry_point.startswith("gymnasium.envs")
        clash = registry.resolve("CartPole-v1")
        assert "gymnasium already has an env with id 'CartPole-v1'" in clash.error
        assert "gymnasium.envs.classic_control.cartpole:CartPoleEnv" in clash.error
        with pytest.raises(PluginError, match="env 'CartPole-v1' from fake-env-plugin 1.0 cannot"):
            registry.get("CartPole-v1")
        # the module registers its own id when gymnasium imports it: still the same entry point
        register_env_plugins(registry)
        assert registry.resolve("FakeWalk-v0").error is None
    finally:
        for env_id in ("FakeWalk-v0", "FakeWalkMade-v0", "FakeBroken-v0", f"{package}Reg-v0"):
            gym.registry.pop(env_id, None)


def test_the_installed_arm_plugin_is_in_the_global_env_registry() -> None:
    entries = {e.name: e for e in ENVS.entries()}
    assert entries["RlplugArm-v0"].distribution == "rlplug-arm"
    assert entries["RlplugArm-v0"].target == "rlplug_arm.env:ArmEnv"
    env = make_env(EnvConfig(id="RlplugArmHard-v0"))  # registered by make_env itself
    try:
        assert env.unwrapped.mode == "hard"
        assert env.observation_space.shape == (7,)
    finally:
        env.close()


# -- the CLI ---------------------------------------------------------------------------------------
def test_list_shows_env_plugins_with_their_distribution_and_marks_broken_ones(env_plugin,
                                                                              run_rlplug) -> None:
    proc = run_rlplug("--list", pythonpath=(env_plugin.root,))
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("rlplug.envs:")[1].split("rlplug.configs:")[0]
    package = env_plugin.modules[0]
    for env_id, target in [("FakeWalk-v0", f"{package}.walk:Walk"),
                           ("FakeWalkMade-v0", f"{package}.walk:make_walk")]:
        line = _listed(section, env_id)
        assert line.split()[1:4] == ["fake-env-plugin", "1.0", target] and line.endswith("[ok]")
    assert _listed(section, "FakeBroken-v0").endswith(f"[BROKEN: RuntimeError: {BROKEN_MESSAGE}]")
    assert "[BROKEN: gymnasium already has an env with id 'CartPole-v1'" in _listed(section,
                                                                                  "CartPole-v1")
    assert _listed(section, "RlplugArm-v0").endswith("[ok]")  # the installed arm plugin too
    assert _listed(proc.stdout, "fakeenvs").endswith("[ok]")


def test_an_env_plugin_trains_from_its_preset_next_to_broken_entries(env_plugin, run_rlplug,
                                                                     tmp_path) -> None:
    run_dir = tmp_path / "run"
    proc = run_rlplug("env=fakewalk", "executor=process", "executor.workers=2",
                      "total_steps=1500", *QUIET, f"hydra.run.dir={run_dir}",
                      pythonpath=(env_plugin.root,))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 1500
    assert summary["config"]["env"]["id"] == "FakeWalk-v0"
    assert summary["plugins"]["fake-env-plugin"] == "1.0"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in rows if r["kind"] == "episode"]
    assert {r["worker"] for r in episodes} == {0, 1}
    assert all(r["length"] <= 12 for r in episodes)  # the plugin's env, with its 12-step limit


@pytest.mark.parametrize("overrides,fragments", [
    (["env=fakewalkk"], ["unknown env 'fakewalkk'", "Did you mean 'fakewalk'?"]),
    (["env.id=FakeBroken-v0"], ["env 'FakeBroken-v0' from fake-env-plugin 1.0 cannot be used",
                                f"RuntimeError: {BROKEN_MESSAGE}"]),
    (["env=cartpole"], ["env 'CartPole-v1' from fake-env-plugin 1.0 cannot be used",
                        "gymnasium already has an env with id 'CartPole-v1'"]),
    (["env.id=FakeWalkk-v0"], ["unknown gymnasium env id 'FakeWalkk-v0'",
                               "Did you mean 'FakeWalk-v0'?"]),
], ids=["preset_typo", "broken_plugin", "clash_with_gymnasium", "id_typo"])
def test_bad_env_choices_are_one_line_errors(env_plugin, run_rlplug, one_line_error, tmp_path,
                                             overrides, fragments) -> None:
    line = one_line_error(run_rlplug(*overrides, "total_steps=100", *QUIET,
                                     pythonpath=(env_plugin.root,)))
    for fragment in fragments:
        assert fragment in line, line
    assert not (tmp_path / "outputs").exists()


def test_two_distributions_registering_one_env_id_is_a_one_line_error(env_plugin, make_distribution,
                                                                     run_rlplug,
                                                                     one_line_error) -> None:
    other = make_distribution("other-env-plugin", "2.0",
                              {"rlplug.envs": {"FakeWalk-v0": "other_walk:Walk"}})
    paths = (env_plugin.root, other.root)
    for args in (["--list"], ["env=acrobot", "total_steps=100", *QUIET]):
        line = one_line_error(run_rlplug(*args, pythonpath=paths))
        assert "env 'FakeWalk-v0' is registered twice" in line, line
        assert "fake-env-plugin" in line and "other-env-plugin" in line


# -- env.id=module:Class ---------------------------------------------------------------------------
def test_env_id_module_class_and_factory_and_registered_id_are_made(walk_module) -> None:
    _, name = walk_module
    for env_id, length in [(f"{name}:Walk", 3), (f"{name}:make_walk", 3),
                           (f"{name}:{name}Reg-v0", 3)]:
        env = make_env(EnvConfig(id=env_id, kwargs={"length": length}))
        try:
            assert type(env.unwrapped).__name__ == "Walk" and env.unwrapped.length == length
            obs, _ = env.reset(seed=0)
            for _ in range(3):
                obs, reward, terminated, truncated, info = env.step(1)
            assert terminated and info == {"is_success": True}
        finally:
            env.close()
    assert f"{name}:Walk" not in gym.registry  # made from the class, nothing registered


@pytest.mark.parametrize("suffix,fragments", [
    (":Wlak", ["has no env class or function 'Wlak'", "its env classes: Walk",
               "Did you mean 'Walk'?"]),
    (":NOT_AN_ENV", ["names 42, which is neither a gymnasium.Env subclass"]),
    ("_broken:Walk", ["cannot import module", f"KeyError: '{BROKEN_MESSAGE}'"]),
], ids=["misspelled_class", "not_an_env", "module_raises_on_import"])
def test_bad_env_id_module_class_is_a_one_line_user_error(walk_module, suffix, fragments) -> None:
    _, name = walk_module
    with pytest.raises(UserError) as info:
        make_env(EnvConfig(id=f"{name}{suffix}"))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_env_id_module_class_trains_under_the_process_executor(walk_module, run_rlplug,
                                                               tmp_path) -> None:
    folder, name = walk_module
    run_dir = tmp_path / "run"
    proc = run_rlplug(f"env.id={name}:Walk", "executor=process",
                      "executor.workers=2", "total_steps=1200", *QUIET, f"hydra.run.dir={run_dir}",
                      pythonpath=(folder,))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 1200
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    workers = {r["worker"] for r in rows if r["kind"] == "episode"}
    assert workers == {0, 1}, "both spawned workers made the env from module:Class"


# -- success reporting -----------------------------------------------------------------------------
def test_episode_rows_carry_success_only_when_the_env_reports_it() -> None:
    assert "success" not in messages.episode(0, 10, 1.5, 10)
    row = messages.episode(1, 20, -2.0, 7, success=True)
    assert row["success"] is True and row["return"] == -2.0 and row["length"] == 7
    assert messages.episode(1, 20, -2.0, 7, success=False)["success"] is False


def test_success_rate_is_over_the_last_100_episodes_that_reported_success() -> None:
    stats = ReturnStats()
    for _ in range(10):
        stats.add(0.0)
    assert stats.success_rate is None  # no env reported success: no rate (not 0%)
    for i in range(150):  # 50 failures, then 100 episodes with 80 successes
        stats.add(1.0, success=i >= 50 and (i - 50) % 5 != 0)
    assert stats.success_rate == pytest.approx(0.8)
    assert stats.episodes == 160 and stats.mean == pytest.approx(1.0)


def test_wandb_charts_episode_success_when_present() -> None:
    row = {"kind": "episode", "worker": 0, "env_step": 50, "return": 1.0, "length": 5,
           "episode": 3}
    assert "episode/success" not in row_to_wandb(row)
    assert row_to_wandb({**row, "success": True})["episode/success"] == 1.0
    assert row_to_wandb({**row, "success": False})["episode/success"] == 0.0


@pytest.mark.parametrize("with_success", [False, True])
def test_progress_bar_shows_the_success_rate_only_for_envs_that_report_it(tmp_path,
                                                                          with_success) -> None:
    monitor = Monitor(tmp_path, SharedCounters(), 1000, [], show_progress=False)
    try:
        for i in range(4):
            success = (i % 2 == 0) if with_success else None
            monitor.on_message(messages.episode(0, 10 * (i + 1), float(i), 10, success=success))
        monitor.on_tick()
        postfix = monitor.bar.postfix or ""
        assert "R100=1.5" in postfix
        assert ("success100=50%" in postfix) is with_success, postfix
    finally:
        monitor.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("success") for r in rows] == ([True, False, True, False] if with_success
                                                else [None] * 4)
