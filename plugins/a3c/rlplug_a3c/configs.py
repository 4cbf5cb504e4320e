"""Config dataclasses of the A3C plugin. :func:`register` stores each in Hydra's ConfigStore as an
option of its group (``algo=a3c``, ``network=ff``, ...), defaults included, so Hydra checks every
key and type; ``__post_init__`` checks ranges (run by the core before any worker starts).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from rlplug.config import require, require_finite
from rlplug.worker_processes import START_METHODS
from rlplug.workerpool import WorkerPoolConfig

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu")


# A3CConfig's float options (all must be finite), with a valid example value for the message.
_EXAMPLES = {"lr": "7e-4", "critic_lr_scale": "1.0", "gamma": "0.99", "gae_lambda": "0.95",
             "entropy_coef": "0.01", "value_coef": "0.5", "max_grad_norm": "40",
             "rmsprop_alpha": "0.99", "optimizer_eps": "1e-8", "reward_scale": "1.0",
             "reward_offset": "0.0", "min_std": "1e-3", "init_std": "0.5", "max_std": "1.0"}
_FINITE_FLOATS = tuple(_EXAMPLES)


@dataclass
class A3CConfig:
    name: str = "a3c"
    lr: float = 7e-4
    critic_lr_scale: float = 1.0  # lr factor for parameters only the value depends on
    lr_schedule: str = "constant"  # constant | linear (decays to 0 at total_steps, as in the paper)
    gamma: float = 0.99
    n_steps: int = 5  # t_max: env steps per worker update (in each of its envs)
    envs_per_worker: int = 16  # B: envs each worker steps together (one batched forward per step)
    gae_lambda: float | None = None  # None: n-step returns; a number in [0, 1]: GAE(lambda)
    entropy_coef: float = 0.01
    entropy_schedule: str = "constant"  # constant | linear (decays to 0 at total_steps, like lr)
    value_coef: float = 0.5
    max_grad_norm: float | None = 40.0  # None: no clipping
    optimizer: str = "adam"  # adam | rmsprop (statistics shared by all workers)
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    rmsprop_alpha: float = 0.99
    optimizer_eps: float = 1e-8
    reward_scale: float = 1.0  # the reward used for training is (r + reward_offset) * reward_scale
    reward_offset: float = 0.0
    min_std: float = 1e-3  # lower bound of the Gaussian policy's standard deviation
    init_std: float = 0.5  # its initial value (in [-1, 1]-normalised action units)
    max_std: float = 1.0  # its upper bound
    normalize_advantages: bool = False  # standardise advantages within each segment

    def __post_init__(self) -> None:
        # Every number must be finite first (inf passes "> 0", nan fails it with a confusing
        # message, and reward_offset has no range at all).
        for key in _FINITE_FLOATS:
            require_finite(getattr(self, key), f"algo.{key}", f"algo.{key}={_EXAMPLES[key]}")
        require(self.lr > 0, "algo.lr", "must be > 0", self.lr, "algo.lr=3e-4")
        require(self.critic_lr_scale > 0, "algo.critic_lr_scale", "must be > 0",
                self.critic_lr_scale, "algo.critic_lr_scale=1.0")
        for key in ("lr_schedule", "entropy_schedule"):  # both: constant, or linear decay to 0
            require(getattr(self, key) in ("constant", "linear"), f"algo.{key}",
                    "must be constant or linear", getattr(self, key), f"algo.{key}=constant")
        require(0 < self.gamma <= 1, "algo.gamma", "must be in (0, 1]", self.gamma, "algo.gamma=0.99")
        require(self.n_steps >= 1, "algo.n_steps", "must be >= 1", self.n_steps, "algo.n_steps=5")
        require(1 <= self.envs_per_worker <= 4096, "algo.envs_per_worker", "must be in [1, 4096]",
                self.envs_per_worker, "algo.envs_per_worker=16")
        if self.gae_lambda is not None:
            require(0 <= self.gae_lambda <= 1, "algo.gae_lambda", "must be in [0, 1] or null",
                    self.gae_lambda, "algo.gae_lambda=0.95")
        require(self.entropy_coef >= 0, "algo.entropy_coef", "must be >= 0", self.entropy_coef,
                "algo.entropy_coef=0.01")
        require(self.value_coef > 0, "algo.value_coef", "must be > 0", self.value_coef,
                "algo.value_coef=0.5")
        if self.max_grad_norm is not None:
            require(self.max_grad_norm > 0, "algo.max_grad_norm", "must be > 0 or null",
                    self.max_grad_norm, "algo.max_grad_norm=40")
        require(self.optimizer in ("adam", "rmsprop"), "algo.optimizer", "must be adam or rmsprop",
                self.optimizer, "algo.optimizer=adam")
        require(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
                "algo.adam_betas", "must be two numbers in [0, 1)", list(self.adam_betas),
                "algo.adam_betas=[0.9,0.999]")
        require(0 < self.rmsprop_alpha < 1, "algo.rmsprop_alpha", "must be in (0, 1)",
                self.rmsprop_alpha, "algo.rmsprop_alpha=0.99")
        require(self.optimizer_eps > 0, "algo.optimizer_eps", "must be > 0", self.optimizer_eps,
                "algo.optimizer_eps=1e-8")
        require(self.reward_scale > 0, "algo.reward_scale", "must be > 0", self.reward_scale,
                "algo.reward_scale=1.0")
        require(self.min_std > 0, "algo.min_std", "must be > 0", self.min_std, "algo.min_std=1e-3")
        require(self.min_std < self.init_std < self.max_std, "algo.init_std",
                "must lie strictly between algo.min_std and algo.max_std", self.init_std,
                "algo.init_std=0.5")


def _check_layers(key: str, sizes: list[int]) -> None:
    require(all(s >= 1 for s in sizes), key, "must be positive layer sizes", list(sizes),
            f"{key}=[64,64]")


def _check_activation(key: str, activation: str) -> None:
    require(activation in ACTIVATIONS, key, f"must be one of {', '.join(ACTIVATIONS)}", activation,
            f"{key}=tanh")


@dataclass
class FeedForwardConfig:
    name: str = "ff"
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    share_body: bool = False  # one MLP body for actor and critic instead of two

    def __post_init__(self) -> None:
        _check_layers("network.hidden_sizes", self.hidden_sizes)
        _check_activation("network.activation", self.activation)


@dataclass
class LSTMConfig:
    name: str = "lstm"
    lstm_size: int = 64
    pre_sizes: list[int] = field(default_factory=lambda: [64])  # MLP layers before the LSTM
    post_sizes: list[int] = field(default_factory=list)  # MLP layers after it, per head
    activation: str = "tanh"
    share_core: bool = False  # actor and critic share pre layers + core; false: a tower each

    def __post_init__(self) -> None:
        require(self.lstm_size >= 1, "network.lstm_size", "must be >= 1", self.lstm_size,
                "network.lstm_size=64")
        _check_layers("network.pre_sizes", self.pre_sizes)
        _check_layers("network.post_sizes", self.post_sizes)
        _check_activation("network.activation", self.activation)


@dataclass
class ThreadExecutorConfig(WorkerPoolConfig):
    name: str = "thread"


@dataclass
class ProcessExecutorConfig(WorkerPoolConfig):
    name: str = "process"
    # auto: fork while the main process runs one Python thread (workers start in milliseconds),
    # else spawn; or fork, spawn, forkserver
    start_method: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.start_method in START_METHODS, "executor.start_method",
                f"must be one of {', '.join(START_METHODS)}", self.start_method,
                "executor.start_method=auto")
        if self.start_method != "auto":
            require(self.start_method in multiprocessing.get_all_start_methods(),
                    "executor.start_method", "is not available on this platform",
                    self.start_method, "executor.start_method=auto")


@dataclass
class SerialExecutorConfig(WorkerPoolConfig):
    """Workers take turns in the main process, one update each (deterministic, debuggable)."""

    name: str = "serial"


def register() -> str:
    """Store the schemas in Hydra's ConfigStore; return this plugin's config search path."""
    cs = ConfigStore.instance()
    cs.store(group="algo", name="a3c", node=A3CConfig)
    cs.store(group="network", name="ff", node=FeedForwardConfig)
    cs.store(group="network", name="lstm", node=LSTMConfig)
    cs.store(group="executor", name="thread", node=ThreadExecutorConfig)
    cs.store(group="executor", name="process", node=ProcessExecutorConfig)
    cs.store(group="executor", name="serial", node=SerialExecutorConfig)
    return "pkg://rlplug_a3c.conf"
