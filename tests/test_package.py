"""The package as users get it: folders by flow, a planner without torch, a wheel that plans."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, ROOT

PACKAGE = ROOT / "plugin" / "layerwise"
TORCH_FREE_FOLDERS = (
    "config",
    "model",
    "hardware",
    "costmodel",
    "partition",
    "planner",
    "report",
    "tune",
)
TORCH_FREE_MODULES = (
    "layerwise",
    "layerwise.__main__",
    "layerwise.errors",
    "layerwise.calibrate.fit",
    "layerwise.cli.common",
    "layerwise.cli.plan",
    "layerwise.cli.compare",
    "layerwise.cli.processes",
    "layerwise.cli.tune",
    "layerwise.runtime.compat.deepspeed_config",
)
HEAVY = ("torch", "deepspeed", "megatron", "matplotlib")


def modules_in(folder: str) -> list[str]:
    return sorted(
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in (PACKAGE / folder).rglob("*.py")
    )


def heavy_imports(modules: list[str]) -> list[str]:
    """The heavy packages that importing `modules` (and planning a seed config) pulls in."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "from layerwise import load_config, make_plan\n"
        "make_plan(load_config('configs/seed_gpt_layerwise.json'))\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])


def test_the_planning_folders_import_no_torch():
    modules = [name for folder in TORCH_FREE_FOLDERS for name in modules_in(folder)]
    assert len(modules) > 20
    assert heavy_imports([*modules, *TORCH_FREE_MODULES]) == []


def test_the_torch_check_sees_a_runtime_module():
    """The check above can fail: a runtime module does pull torch in."""
    assert "torch" in heavy_imports(["layerwise.runtime.runners.base"])


def test_only_the_api_errors_and_main_sit_at_the_top():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "errors.py"]


def test_python_m_layerwise_lists_and_refuses_commands():
    run = [sys.executable, "-m", "layerwise"]
    listed = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert listed.returncode == 2 and "plan" in listed.stdout and "calibrate" in listed.stdout
    assert "tune" in listed.stdout
    unknown = subprocess.run([*run, "plot"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert unknown.returncode == 2 and "unknown command 'plot'" in unknown.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of this checkout (building writes build/ and *.egg-info beside
    the sources), installed without dependencies into a folder."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    shutil.copytree(ROOT / "plugin", source / "plugin", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q"]
    build = subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(folder / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (folder / "dist").glob("layerwise-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "layerwise/hardware/profiles/h100-sxm.yaml" in names
    site = folder / "site"
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("LAYERWISE_HARDWARE_DIR", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_the_wheel_plans_a_seed_config_by_profile_name_outside_the_checkout(installed, tmp_path):
    config = tmp_path / "seed.json"
    shutil.copy(CONFIGS / "seed_gpt_layerwise.json", config)  # profile "h100-sxm", by name
    where = run_installed(installed, tmp_path, "-c", "import layerwise; print(layerwise.__file__)")
    assert where.stdout.strip().startswith(str(installed)), where.stdout + where.stderr
    done = run_installed(
        installed,
        tmp_path,
        "-m",
        "layerwise",
        "plan",
        "--config",
        "seed.json",
        "--json",
        "plan.json",
    )
    assert done.returncode == 0, done.stderr
    assert "recommend" in done.stdout.lower() and (tmp_path / "plan.json").is_file()
    script = run_installed(
        installed, tmp_path, str(installed / "bin" / "layerwise-plan"), "--config", "seed.json"
    )
    assert script.returncode == 0 and script.stdout == done.stdout, script.stderr


def test_the_wheel_names_its_shipped_profiles_when_one_is_missing(installed, tmp_path):
    config = tmp_path / "seed.json"
    config.write_text(
        (CONFIGS / "seed_gpt_layerwise.json").read_text().replace('"h100-sxm"', '"h900"')
    )
    done = run_installed(installed, tmp_path, "-m", "layerwise", "plan", "--config", "seed.json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "h900" in done.stderr and "cpu-mock, h100-sxm, h200" in done.stderr
