"""The shared optimizers: the same numbers as torch.optim, updates made in a spawned child visible
to the parent (parameters and step count), and the local-gradient hand-off of the worker."""

from __future__ import annotations

import copy

import torch
import torch.multiprocessing as mp

from rlplug.build import NetworkBuilder
from rlplug.config import EnvConfig
from rlplug.envs import probe_env
from rlplug_a3c.algorithm import A3C
from rlplug_a3c.configs import A3CConfig, FeedForwardConfig
from rlplug_a3c.networks.feedforward import FeedForwardActorCritic
from rlplug_a3c.shared_optim import SharedAdam, SharedRMSprop

CHILD_TIMEOUT_S = 120  # a hang guard only


def _grads(n: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, generator=g) * (i + 1) for i in range(n)]


def _reference_adam(start: torch.Tensor, grads: list[torch.Tensor], lr: float) -> torch.Tensor:
    param = torch.nn.Parameter(start.clone())
    opt = torch.optim.Adam([param], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    for grad in grads:
        param.grad = grad.clone()
        opt.step()
    return param.detach()


def _reference_rmsprop(start: torch.Tensor, grads: list[torch.Tensor], lr: float) -> torch.Tensor:
    param = torch.nn.Parameter(start.clone())
    opt = torch.optim.RMSprop([param], lr=lr, alpha=0.99, eps=1e-8)
    for grad in grads:
        param.grad = grad.clone()
        opt.step()
    return param.detach()


def test_shared_adam_matches_torch_adam_on_the_same_gradients() -> None:
    start = torch.randn(50, generator=torch.Generator().manual_seed(1))
    params = start.clone().share_memory_()
    optimizer = SharedAdam(params, (0.9, 0.999), 1e-8)
    grads = _grads(5, 50)
    for grad in grads:
        optimizer.step(grad, 1e-2)
    assert optimizer.step_count == 5
    assert torch.allclose(params, _reference_adam(start, grads, 1e-2), atol=1e-6)
    assert not torch.allclose(params, start)


def test_shared_rmsprop_matches_torch_rmsprop_on_the_same_gradients() -> None:
    start = torch.randn(50, generator=torch.Generator().manual_seed(2))
    params = start.clone().share_memory_()
    optimizer = SharedRMSprop(params, 0.99, 1e-8)
    grads = _grads(5, 50, seed=3)
    for grad in grads:
        optimizer.step(grad, 1e-3)
    assert optimizer.step_count == 5
    assert torch.allclose(params, _reference_rmsprop(start, grads, 1e-3), atol=1e-6)


def test_steps_made_in_a_spawned_child_reach_the_parent(support_on_path) -> None:
    import a3c_test_support

    start = torch.randn(30, generator=torch.Generator().manual_seed(4))
    adam_params, rms_params = start.clone().share_memory_(), start.clone().share_memory_()
    adam = SharedAdam(adam_params, (0.9, 0.999), 1e-8)
    rmsprop = SharedRMSprop(rms_params, 0.99, 1e-8)
    grads = _grads(3, 30, seed=5)
    child = mp.get_context("spawn").Process(target=a3c_test_support.optimizer_steps_in_child,
                                            args=([adam, rmsprop], grads, 1e-2))
    child.start()
    child.join(CHILD_TIMEOUT_S)
    assert child.exitcode == 0
    # the parent's tensors are the child's: the parameters moved exactly as the optimizer says,
    # and the step count (Adam's bias correction) advanced with them
    for optimizer, params, reference in [(adam, adam_params, _reference_adam),
                                         (rmsprop, rms_params, _reference_rmsprop)]:
        assert torch.allclose(params, reference(start, grads, 1e-2), atol=1e-6), optimizer.kind
        assert optimizer.step_count == 3, optimizer.kind
        # a further step in the parent continues from the child's statistics
        optimizer.step(grads[0], 1e-2)
        assert torch.allclose(params, reference(start, [*grads, grads[0]], 1e-2), atol=1e-6)


def test_concurrent_steps_from_several_processes_are_counted_and_never_torn(
        support_on_path) -> None:
    # Adam's bias correction reads the shared step count, and a step reads both moments: steps
    # racing between processes must neither lose counts nor mix one worker's half-written
    # moments into another's update (which once made the critic explode). Stepped atomically,
    # 3 x 20000 concurrent steps of a constant gradient equal 60000 sequential steps exactly.
    import a3c_test_support

    start_params = torch.linspace(-1.0, 1.0, 4)
    adam = SharedAdam(start_params.clone().share_memory_(), (0.9, 0.999), 1e-8)
    context = mp.get_context("spawn")
    start = context.Event()
    children = [context.Process(target=a3c_test_support.optimizer_steps_after,
                                args=(start, adam, 20_000)) for _ in range(3)]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(CHILD_TIMEOUT_S)
        assert child.exitcode == 0
    assert adam.step_count == 3 * 20_000
    sequential = SharedAdam(start_params.clone(), (0.9, 0.999), 1e-8)
    for _ in range(3 * 20_000):
        sequential.step(torch.ones(4), 1e-6)
    assert torch.equal(adam.params, sequential.params)
    assert torch.equal(adam.state["exp_avg_sq"], sequential.state["exp_avg_sq"])


def _algo(optimizer: str, **overrides: object) -> A3C:
    env_cfg = EnvConfig(id="CartPole-v1")
    spec = probe_env(env_cfg)
    builder = NetworkBuilder(FeedForwardActorCritic, spec.obs_shape, FeedForwardConfig())
    return A3C(A3CConfig(optimizer=optimizer, **overrides), env_cfg, spec, builder, seed=0)


def test_a3c_updates_in_a_spawned_worker_change_the_parents_model(support_on_path) -> None:
    import a3c_test_support

    algos = [_algo("adam"), _algo("rmsprop")]
    before = [{k: v.clone() for k, v in algo.global_net.state_dict().items()} for algo in algos]
    context = mp.get_context("spawn")
    result = context.Queue()
    child = context.Process(target=a3c_test_support.a3c_updates_in_child,
                            args=(algos, 7, 3, result))
    child.start()
    child_step_counts = result.get(timeout=CHILD_TIMEOUT_S)
    child.join(CHILD_TIMEOUT_S)
    assert child.exitcode == 0
    assert child_step_counts == [3, 3]
    for algo, old in zip(algos, before, strict=True):
        kind = algo.cfg.optimizer
        assert algo.optimizer.step_count == 3, kind
        new = algo.global_net.state_dict()
        assert any(not torch.equal(old[k], new[k]) for k in old), \
            f"{kind}: the parent's global network did not see the child's updates"
        # the network's parameters are still views of the shared flat tensor the optimizer steps
        flat = torch.cat([p.detach().reshape(-1) for p in algo.global_net.parameters()])
        assert torch.equal(flat, algo.params), kind


def test_local_gradients_reach_the_shared_optimizer_on_every_update(make_worker) -> None:
    # Pitfall: zero_grad(set_to_none=True) replaces the .grad views of the flat gradient buffer,
    # after which the optimizer would step with a stale or zero gradient.
    worker = make_worker("env=cartpole", "algo.max_grad_norm=null", "algo.n_steps=8", "algo.lr=1e-2",
                         "algo.envs_per_worker=3")
    algo = worker.ctx.model  # the hosted GlobalModel: the shared flat parameters and optimizer
    reference = torch.nn.Parameter(algo.params.clone())
    reference_opt = torch.optim.Adam([reference], lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    local_params = list(worker.net.parameters())
    for update in range(4):
        worker.pull()
        assert torch.equal(worker.params, algo.params)
        segment, _ = worker.collect(8 * 3)
        loss = worker.losses(copy.copy(segment)).total
        expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, local_params)])
        assert expected.abs().max() > 0
        worker.update(segment, env_step=0)
        assert torch.allclose(worker.grad, expected, atol=1e-6), f"update {update}: wrong gradient"
        reference.grad = expected.clone()
        reference_opt.step()
        assert torch.allclose(algo.params, reference.detach(), atol=1e-6), f"update {update}"
    assert algo.optimizer.step_count == 4
