"""network=lstm: state resets, exact recomputation in the update, memory, executors, checkpoints.

Everything runs the real parts: real gymnasium envs, the real A3CWorker collect/update path,
real thread and process executors, real checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from rlplug.build import build_algorithm
from rlplug.config import RunConfig, to_run_config
from rlplug.contracts import State, WorkerContext
from rlplug.counters import SharedCounters
from rlplug.envs import make_env, probe_env
from rlplug.errors import UserError
from rlplug.evaluate import load_run
from rlplug.evaluation import evaluate_policy
from rlplug.plugins import install_search_path
from rlplug.run import train
from rlplug_a3c.networks.lstm import LSTMActorCritic, reset_free_stretches
from rlplug_a3c.worker import A3CWorker, Segment

TESTS_DIR = Path(__file__).resolve().parent
MEMORY_ENV = "env.id=memory_env:CueMemory-v0"
QUIET = ["logger.mode=disabled", "progress=false", "checkpoint.every_steps=0"]


@pytest.fixture(autouse=True)
def _memory_env_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # memory_env must be importable by name, here and in spawned workers (which inherit sys.path)
    monkeypatch.syspath_prepend(str(TESTS_DIR))


def compose_run(*overrides: str) -> RunConfig:
    """The validated config that ``python -m rlplug <overrides>`` would train with."""
    install_search_path()
    with initialize_config_module(config_module="rlplug.conf", version_base="1.3"):
        return to_run_config(compose("config", overrides=[*QUIET, *overrides]))


def make_worker(run: RunConfig) -> A3CWorker:
    algo = build_algorithm(run, probe_env(run.env))
    ctx = WorkerContext(rank=0, seed=run.seed, counters=SharedCounters(), model=algo.model, total_steps=run.total_steps,
                        send=lambda msg: None, stop_requested=lambda: False)
    return A3CWorker(ctx, algo.cfg, algo.env_cfg, algo.head, algo.build_network)


@dataclass
class Step:
    """One acting row as the worker saw it (``B`` envs)."""

    starts: torch.Tensor  # [B] the episode_starts flags passed with this row's observations
    state_in: State  # the state the worker passed in
    policy: torch.Tensor  # [B, policy_dim]
    value: torch.Tensor  # [B]
    state_out: State
    from_zero: tuple[torch.Tensor, torch.Tensor]  # (policy, value) from a zero state, no reset flag
    carried: tuple[torch.Tensor, torch.Tensor]  # (policy, value) from state_in, no reset flag


@dataclass
class BootstrapCall:
    """A value-only call: V(final obs) of truncated episodes, after acting row ``after``."""

    after: int
    state_in: State


class Recorder:
    """Wraps a worker's network and action head to record what acting and the update computed.

    Acting rows are the ``T=1`` network calls whose policy the action head sampled from; other
    ``T=1`` calls are the values of truncated episodes' final observations. For each acting row
    the recorder also evaluates the same observations from a zero state and from the incoming
    state without any reset, so a test can tell which state each env's core really started from.
    """

    def __init__(self, worker: A3CWorker):
        self.steps: list[Step] = []
        self.bootstraps: list[BootstrapCall] = []
        self.updates: list[tuple[torch.Tensor, torch.Tensor]] = []  # (policy, value) per update
        self._last: Step | None = None
        self._ending = False
        net, head = worker.net, worker.head
        forward, sample = net.forward, head.sample

        def recording_forward(obs, state, starts):
            policy, value, new_state = forward(obs, state, starts)
            if self._ending:  # inside _end_episodes: V(final obs) of truncated episodes
                self.bootstraps.append(BootstrapCall(len(self.steps) - 1,
                                                     tuple(s.clone() for s in state)))
            elif obs.shape[0] == 1:
                with torch.no_grad():
                    zero_p, zero_v, _ = forward(obs, net.initial_state(obs.shape[1]), 0 * starts)
                    carry_p, carry_v, _ = forward(obs, state, 0 * starts)
                self._last = Step(starts[0].clone(), tuple(s.clone() for s in state),
                                  policy[0].clone(), value[0].clone(),
                                  tuple(s.clone() for s in new_state),
                                  (zero_p[0], zero_v[0]), (carry_p[0], carry_v[0]))
            else:
                self.updates.append((policy.detach().clone(), value.detach().clone()))
            return policy, value, new_state

        def recording_sample(params, generator):
            assert self._last is not None and torch.equal(params, self._last.policy)
            self.steps.append(self._last)
            return sample(params, generator)

        def recording_forward_policy(obs, state, starts):
            # acting: recorded through forward, whose policy and state forward_policy gives
            # (rlplug.testing.check_network checks that), so the acting values are known too
            policy, _, new_state = recording_forward(obs, state, starts)
            return policy, new_state

        net.forward = recording_forward  # instance attribute: nn.Module.__call__ finds it first
        net.forward_policy = recording_forward_policy
        head.sample = recording_sample
        end_episodes = worker._end_episodes

        def recording_end_episodes(result, train_rewards, step_base):
            self._ending = True
            try:
                return end_episodes(result, train_rewards, step_base)
            finally:
                self._ending = False

        worker._end_episodes = recording_end_episodes


def drive(worker: A3CWorker, segments: int,
          after_update: Callable[[Segment], None] | None = None) -> list[Segment]:
    """The worker's own loop (pull, collect, update), ``segments`` times; ``after_update`` sees
    each segment while the local network still has the parameters it acted with."""
    out = []
    steps = worker.cfg.n_steps * worker.num_envs
    for _ in range(segments):
        worker.pull()
        segment, finished = worker.collect(steps)
        worker.ctx.counters.add(steps, finished)
        worker.update(segment, worker.ctx.counters.env_steps)
        if after_update is not None:
            after_update(segment)
        out.append(segment)
    return out


def _is_zero(state: State | tuple[torch.Tensor, ...]) -> bool:
    return all(not s.any() for s in state)


# ---------------------------------------------------------------------------------------------
# reset semantics


@pytest.mark.parametrize("share_core", [True, False])
def test_lstm_state_is_zero_at_each_envs_episode_start_and_carried_across_segments_within_an_episode(
        share_core: bool) -> None:
    # 3 envs, episodes of at most 12 steps (truncated) or fewer (terminated), segments of 5 rows:
    # episode ends fall at every position inside segments and on segment boundaries, at
    # different rows in different envs
    B = 3
    run = compose_run("env=cartpole", "network=lstm", f"network.share_core={share_core}",
                      "env.max_episode_steps=12", "algo.n_steps=5", f"algo.envs_per_worker={B}",
                      "seed=3")
    worker = make_worker(run)
    rec = Recorder(worker)
    segments = drive(worker, 40)
    starts = torch.cat([seg.episode_starts[:-1] for seg in segments])  # [200, B]
    dones = torch.cat([seg.dones for seg in segments])
    assert len(rec.steps) == len(starts) == 200

    # the flags mark exactly the first step of every episode, per env
    expected = torch.cat([torch.ones(1, B), dones[:-1]])
    assert torch.equal(starts, expected)
    assert all(10 < int(starts[:, b].sum()) < 100 for b in range(B))
    assert (starts.sum(1) % B != 0).sum() > 20, "envs should start episodes at different rows"

    for i, step in enumerate(rec.steps):
        assert torch.equal(step.starts, starts[i])
        for b in range(B):
            if step.starts[b]:  # a new episode: the core starts from zeros
                torch.testing.assert_close(step.policy[b], step.from_zero[0][b], rtol=0, atol=1e-6)
                torch.testing.assert_close(step.value[b], step.from_zero[1][b], rtol=0, atol=1e-6)
            else:  # within an episode: the state the previous row produced, which is not zero
                previous = rec.steps[i - 1].state_out
                for k, s in enumerate(step.state_in):
                    assert torch.equal(s[b], previous[k][b]), f"row {i}, env {b}: state not carried"
                    assert s[b].abs().sum() > 0
                torch.testing.assert_close(step.policy[b], step.carried[0][b], rtol=0, atol=1e-6)
                assert (step.policy[b] - step.from_zero[0][b]).abs().max() > 1e-6 or \
                    (step.value[b] - step.from_zero[1][b]).abs() > 1e-6, \
                    f"row {i}, env {b}: outputs do not depend on the carried state"

    # each segment stores the state its first row starts from: the previous segment's last
    # state (inside an episode it is not reset; at an episode start the flag makes it irrelevant)
    mid_episode = 0
    for k in range(1, len(segments)):
        carried = rec.steps[5 * k - 1].state_out
        for stored, last in zip(segments[k].initial_state, carried, strict=True):
            assert torch.equal(stored, last)
        mid = segments[k].episode_starts[0] == 0
        if mid.any():
            mid_episode += 1
            assert not _is_zero(tuple(s[mid] for s in segments[k].initial_state))
    assert mid_episode >= 5

    # truncated episodes bootstrap from V(final obs) with each env's state after that step: every
    # row of the state passed to that call is the state that env's core produced in that step
    assert len(rec.bootstraps) > 10
    for call in rec.bootstraps:
        after = rec.steps[call.after].state_out
        for got, produced in zip(call.state_in, after, strict=True):
            assert not _is_zero((got,))
            for row in got:
                assert (produced == row).all(-1).any(), "a truncated env bootstrapped from " \
                                                        "another state than its own after the step"


# ---------------------------------------------------------------------------------------------
# recomputation in the update


@pytest.mark.parametrize("env_overrides", [
    ["env=cartpole", "env.max_episode_steps=15"],  # discrete: logits
    ["env=pendulum", "env.max_episode_steps=7"],  # continuous: means and standard deviations
], ids=["discrete", "continuous"])
@pytest.mark.parametrize("share_core", [True, False])
def test_update_recomputes_the_acting_outputs_of_a_batch_whose_envs_reset_at_different_steps(
        env_overrides: list[str], share_core: bool) -> None:
    n, B = 6, 4
    run = compose_run(*env_overrides, "network=lstm", f"network.share_core={share_core}",
                      "network.post_sizes=[16]", f"algo.n_steps={n}",
                      f"algo.envs_per_worker={B}", "seed=1")
    worker = make_worker(run)
    rec = Recorder(worker)
    bootstraps = []

    def bootstrap_from_last_state(segment: Segment) -> None:
        # V(obs[T]) from the state after the segment's last row, with the acting parameters
        with torch.no_grad():
            _, value, _ = worker.net(segment.obs[n: n + 1], rec.steps[-1].state_out,
                                     segment.episode_starts[n: n + 1])
        bootstraps.append(value[0])

    segments = drive(worker, 12, bootstrap_from_last_state)
    assert len(rec.updates) == len(segments)
    crossing = staggered = long_stretches = 0
    for k, (segment, (policy, value)) in enumerate(zip(segments, rec.updates, strict=True)):
        acted = rec.steps[n * k: n * (k + 1)]
        # the update's forward over obs[0..T] from the stored initial state gives, for every row
        # and env, the policy and value the worker computed while acting
        torch.testing.assert_close(policy[:n], torch.stack([s.policy for s in acted]),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(value[:n], torch.stack([s.value for s in acted]),
                                   rtol=1e-5, atol=1e-6)
        # the bootstrap value comes from each env's state after the segment's last row
        torch.testing.assert_close(value[n], bootstraps[k], rtol=1e-5, atol=1e-6)
        inner = segment.episode_starts[1:n]
        crossing += int(inner.any())
        staggered += int(len({tuple(inner[:, b].tolist()) for b in range(B)}) > 1)
        stretches = reset_free_stretches(segment.episode_starts)
        long_stretches += int(len(stretches) > 1 and max(e - s for s, e in stretches) > 1)
    assert crossing >= 3  # several segments had an episode end inside them
    if env_overrides[0] == "env=cartpole":
        assert staggered >= 3  # ... at different rows in different envs
    assert long_stretches >= 1  # nn.LSTM ran over a multi-step stretch between resets


def test_reset_free_stretches_cut_at_rows_where_any_env_starts_an_episode() -> None:
    starts = torch.zeros(7, 3)
    starts[0] = 1
    starts[2, 1] = 1
    starts[5, 0] = starts[5, 2] = 1
    assert reset_free_stretches(starts) == [(0, 2), (2, 5), (5, 7)]
    assert reset_free_stretches(torch.zeros(4, 2)) == [(0, 4)]
    assert reset_free_stretches(torch.ones(1, 2)) == [(0, 1)]


def test_lstm_recomputation_differs_without_the_stored_initial_state() -> None:
    """Guard for the test above: mid-episode, the stored state changes the outputs (so starting
    the update from zeros would be caught)."""
    run = compose_run("env=cartpole", "network=lstm", "algo.n_steps=5", "algo.envs_per_worker=2",
                      "seed=0")
    worker = make_worker(run)
    segments = drive(worker, 3)
    segment = next(s for s in segments if (s.episode_starts[0] == 0).all())
    with torch.no_grad():
        stored, _, _ = worker.net(segment.obs, segment.initial_state, segment.episode_starts)
        zeros, _, _ = worker.net(segment.obs, worker.net.initial_state(2), segment.episode_starts)
    assert (stored[0] - zeros[0]).abs().max() > 1e-4


# ---------------------------------------------------------------------------------------------
# memory


# Measured (seeds 0-5, thread executor, greedy success over 100 episodes every ~700 steps): the
# LSTM reached 1.0 by 600-1000 env steps and stayed there; feed-forward stayed at 0.45-0.55.
# 4000 steps leave the LSTM four times what it needed; both networks get the same budget.
MEMORY_STEPS = 4000


def _memory_success(network: str, seed: int, tmp_path: Path) -> float:
    """Train on the cue task with the thread executor, then the greedy policy's success rate."""
    run = compose_run(MEMORY_ENV, "+env.kwargs.delay=4", f"network={network}", "executor=thread",
                      "algo.n_steps=12", "algo.envs_per_worker=1", f"total_steps={MEMORY_STEPS}",
                      f"seed={seed}")
    result = train(run, tmp_path / f"{network}-{seed}")
    assert result.status == "completed"
    _, algo, _ = load_run(result.run_dir)
    return evaluate_policy(algo, run.env, episodes=200, seed=10_000).mean


def test_lstm_learns_a_cue_shown_only_at_the_first_step_and_feedforward_cannot(
        tmp_path: Path) -> None:
    lstm = [_memory_success("lstm", seed, tmp_path) for seed in (0, 1)]
    ff = _memory_success("ff", 0, tmp_path)
    assert min(lstm) >= 0.95, lstm
    assert 0.35 <= ff <= 0.65, ff  # no memory: the decision step always looks the same


def test_memory_env_pays_only_for_the_cued_action_at_the_decision_step() -> None:
    env = gym.make("memory_env:CueMemory-v0", delay=2)
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        cue = info["cue"]
        assert obs.tolist() == [cue, 0.0]
        for _ in range(2):  # blank steps: no cue, no reward, whatever the action
            obs, reward, terminated, truncated, _ = env.step(1)
            assert obs.tolist() == [0.0, 0.0] and reward == 0.0 and not terminated
        assert obs.tolist() == [0.0, 0.0]
        obs, reward, terminated, _, _ = env.step(0)
        assert obs.tolist() == [0.0, 1.0] and reward == 0.0 and not terminated
        _, reward, terminated, _, _ = env.step(1 if cue > 0 else 0)
        assert reward == 1.0 and terminated


# ---------------------------------------------------------------------------------------------
# executors, checkpoints, resume, continuous actions


def _outputs(net: LSTMActorCritic, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.zeros(obs.shape[0], 1)
    starts[0] = starts[4] = 1.0  # an episode boundary inside the sequence
    with torch.no_grad():
        policy, value, _ = net(obs, net.initial_state(1), starts)
    return policy, value


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_lstm_trains_under_each_executor_and_survives_checkpoint_load_and_resume(
        executor: str, tmp_path: Path) -> None:
    common = ["env=cartpole", "env.obs_indices=[0,2]", "network=lstm", f"executor={executor}",
              "executor.workers=2", "algo.n_steps=8"]
    first = train(compose_run(*common, "total_steps=2000"), tmp_path / "first")
    assert first.status == "completed" and first.summary["env_steps"] == 2000
    assert first.summary["episodes"] > 0

    run, algo, payload = load_run(first.run_dir)
    assert run.network.name == "lstm" and payload["env_steps"] == 2000
    net = algo.global_net
    assert isinstance(net, LSTMActorCritic)
    # the loaded global net holds the trained weights (not a fresh initialisation) ...
    saved = net.state_dict()
    flat = payload["algorithm"]["model"]["params"]
    assert torch.equal(flat, torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    fresh = build_algorithm(run, probe_env(run.env)).global_net
    obs = torch.randn(9, 1, 2, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(_outputs(fresh, obs)[0], _outputs(net, obs)[0])
    # ... also in the flat shared tensor the workers would read; loading again gives identical
    # outputs, and a plain net rebuilt from the checkpoint the same up to float rounding (its
    # weights are not views of one flat tensor, so the kernels may round differently)
    assert torch.equal(algo.params, torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    again = load_run(first.run_dir)[1].global_net
    rebuilt = LSTMActorCritic((2,), 2, run.network)
    rebuilt.load_state_dict(saved)
    for got, same, close in zip(_outputs(net, obs), _outputs(again, obs), _outputs(rebuilt, obs),
                                strict=True):
        assert torch.equal(got, same)
        torch.testing.assert_close(got, close, rtol=1e-6, atol=1e-6)
    # the evaluation actor carries and resets the state
    assert len(evaluate_policy(algo, run.env, episodes=2).returns) == 2

    resumed = train(compose_run(*common, "total_steps=3000", f"resume={first.run_dir}"),
                    tmp_path / "resumed")
    assert resumed.status == "completed" and resumed.summary["env_steps"] == 3000
    assert resumed.summary["episodes"] > first.summary["episodes"]


def test_pendulum_with_lstm_trains_from_the_command_line_with_the_process_executor(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlplug", "algo=a3c", "env=pendulum", "executor=process",
         "network=lstm", "network.share_core=false", "network.post_sizes=[32]",
         "algo.envs_per_worker=2", "total_steps=1600", *QUIET, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["env_steps"] == 1600
    # 200-step episodes in 4 envs (2 workers x 2) that split 1600 steps: 8 if evenly
    assert 5 <= summary["episodes"] <= 8
    assert np.isfinite(summary["return_mean100_final"])
    _, algo, _ = load_run(run_dir)
    assert algo.head.policy_dim == 2  # mean and standard deviation of the one torque


# ---------------------------------------------------------------------------------------------
# partial observability


def test_obs_indices_keeps_only_the_chosen_components_and_sizes_the_network() -> None:
    full = make_env(compose_run("env=cartpole").env)
    run = compose_run("env=cartpole", "env.obs_indices=[0,2]", "network=lstm")
    part = make_env(run.env)
    assert part.observation_space.shape == (2,)
    obs_full, _ = full.reset(seed=5)
    obs_part, _ = part.reset(seed=5)
    for _ in range(20):
        assert np.array_equal(obs_part, obs_full[[0, 2]])
        obs_full, _, done, _, _ = full.step(1)
        obs_part, _, _, _, _ = part.step(1)
        if done:
            break
    net = build_algorithm(run, probe_env(run.env)).global_net
    assert net.towers[0].pre.hidden[0].in_features == 2
    with pytest.raises(UserError, match="obs_indices"):
        make_env(compose_run("env=cartpole", "env.obs_indices=[0,4]").env)
