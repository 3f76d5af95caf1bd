"""The conda environment for `--sdm conda` users names the package's runtime dependencies."""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# the rules run inside the environment but Snakemake itself runs outside it
NOT_IN_RULE_ENV = {"snakemake"}


def normalized(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_requirements(env: dict) -> list[str]:
    for entry in env["dependencies"]:
        if isinstance(entry, dict) and "pip" in entry:
            return entry["pip"]
    return []


def test_synful_env_names_the_runtime_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # the workflow's predict.cluster starts batch jobs from inside the rule's environment
    extras = project["optional-dependencies"]["cluster"]
    wanted = {normalized(r) for r in project["dependencies"] + extras} - NOT_IN_RULE_ENV
    env = yaml.safe_load((REPO / "envs" / "synful.yaml").read_text())
    requirements = pip_requirements(env)
    named = {normalized(r) for r in requirements}
    assert named == wanted
    assert "conda-forge" in env["channels"]
    # pinned, so the environment is reproducible
    assert all("==" in r for r in requirements), requirements


def torch_requirement(requirements) -> str:
    (found,) = [r for r in requirements if normalized(r) == "torch"]
    return found


def release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.match(r"[\d.]+", version).group().rstrip(".").split("."))


def test_torch_is_at_least_2_6_everywhere():
    # torch.load(weights_only=True) can run code from a crafted checkpoint before 2.6
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert torch_requirement(project["dependencies"]).replace(" ", "") == "torch>=2.6"
    env = yaml.safe_load((REPO / "envs" / "synful.yaml").read_text())
    pinned = torch_requirement(pip_requirements(env)).split("==")[1]
    assert release(pinned) >= (2, 6)
    script = (REPO / "scripts" / "setup_env.sh").read_text()
    assert re.search(r"^MIN_TORCH=2\.6$", script, re.M)
    default = re.search(r"TORCH_SPEC:-torch==([\d.]+)", script).group(1)
    assert release(default) >= (2, 6)


def older(version: str, minimum: str | None = None) -> bool:
    """``version_older`` of scripts/setup_env.sh (sourced, so that only its functions run)."""
    script = REPO / "scripts" / "setup_env.sh"
    args = [version] + ([minimum] if minimum else [])
    # were main to run, it would fail at once instead of touching an environment
    env = {"PATH": os.environ["PATH"], "SYNFUL_VENV": "/nonexistent/venv", "PYTHON": "false"}
    result = subprocess.run(
        ["bash", "-c", 'source "$1"; shift; version_older "$@"', "bash", str(script), *args],
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
    )
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout == "" and result.stderr == ""  # sourcing ran nothing else
    return result.returncode == 0


@pytest.mark.parametrize(
    "version",
    ["2.5.1+cu121", "2.5", "2.4.0", "1.13.1", "2.6.0a0+git1234", "2.6.0rc1", "2.6.0.dev20241112"],
)
def test_setup_script_upgrades_torch_older_than_2_6(version):
    assert older(version)


@pytest.mark.parametrize(
    "version",
    ["2.6", "2.6.0", "2.6.0+cpu", "2.6.0.post1", "2.7.1+cu128", "2.10.0", "2.13.0", "3.0"],
)
def test_setup_script_keeps_torch_2_6_or_newer(version):
    assert not older(version)


def test_version_older_with_another_minimum():
    assert older("2.9.9", "2.10") and not older("2.10.0", "2.10") and older("1.2", "1.2.1")
