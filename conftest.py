"""Test-wide settings: W&B stays offline and writes only into a temporary directory."""

import os
import tempfile

_WANDB_ROOT = tempfile.mkdtemp(prefix="rlplug-tests-wandb-")
for _name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
    os.environ[_name] = os.path.join(_WANDB_ROOT, _name.lower())
    os.makedirs(os.environ[_name], exist_ok=True)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.pop("WANDB_API_KEY", None)
