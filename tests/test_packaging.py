"""A non-editable install works: the wheels ship the Hydra configs as package data, and the CLI
composes and trains from the installed copies (``pkg://rlplug.conf``), not from the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 300  # a hang guard only


def _build_wheel(source: Path, out: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = [p for p in out.glob("*.whl") if p.name.startswith(_dist_prefix(source))]
    return wheel


def _dist_prefix(source: Path) -> str:
    return "rlplug_a3c-" if source.name == "a3c" else "rlplug-"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both wheels built and installed (without dependencies) into a fresh target directory."""
    tmp = tmp_path_factory.mktemp("packaging")
    wheels = [_build_wheel(ROOT, tmp / "wheels"), _build_wheel(ROOT / "plugins" / "a3c", tmp / "wheels")]
    target = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(target), *map(str, wheels)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def test_wheels_ship_every_config_file_as_package_data(installed: Path) -> None:
    wheels = sorted((installed.parent / "wheels").glob("*.whl"))
    names = {n for w in wheels for n in zipfile.ZipFile(w).namelist()}
    for yaml in (ROOT / "conf").rglob("*.yaml"):
        assert f"rlplug/conf/{yaml.relative_to(ROOT / 'conf')}" in names
    plugin_conf = ROOT / "plugins" / "a3c" / "rlplug_a3c" / "conf"
    for yaml in plugin_conf.rglob("*.yaml"):
        assert f"rlplug_a3c/conf/{yaml.relative_to(plugin_conf)}" in names


def test_installed_copy_lists_plugins_and_trains_from_its_own_configs(installed: Path,
                                                                    run_rlplug, tmp_path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import rlplug, rlplug_a3c, importlib.resources as r; "
         "print(rlplug.__file__); print(rlplug_a3c.__file__); "
         "print(r.files('rlplug.conf').joinpath('config.yaml').is_file())"],
        env={"PYTHONPATH": str(installed), "PATH": ""}, capture_output=True, text=True,
        cwd=tmp_path, timeout=BUILD_TIMEOUT_S)
    lines = probe.stdout.split()
    assert lines[0].startswith(str(installed)) and lines[1].startswith(str(installed)), probe.stderr
    assert lines[2] == "True"

    listing = run_rlplug("--list", pythonpath=(installed,))
    assert listing.returncode == 0, listing.stderr
    assert "rlplug-a3c" in listing.stdout and "BROKEN" not in listing.stdout

    run_dir = tmp_path / "run"
    proc = run_rlplug("env=cartpole", "executor=thread", "executor.workers=1", "total_steps=600",
                      "logger.mode=disabled", "progress=false", f"hydra.run.dir={run_dir}",
                      pythonpath=(installed,))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "summary.json").exists() and (run_dir / "checkpoint.pt").exists()


def _requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    return [line.split(":", 1)[1].strip() for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]


def test_plain_install_brings_wandb_for_the_default_logger(installed: Path) -> None:
    (wheel,) = (installed.parent / "wheels").glob("rlplug-*.whl")
    requirements = _requirements(wheel)
    unconditional = [r for r in requirements if "extra ==" not in r]
    # The default logger (logger=wandb, offline mode) imports wandb: no extra may be needed.
    assert any(r.replace(" ", "").startswith("wandb>=") for r in unconditional), requirements
    for name in ("torch", "hydra-core", "omegaconf", "gymnasium", "numpy", "tqdm", "matplotlib"):
        assert any(r.startswith(name) for r in unconditional), (name, requirements)
