"""The conda environment for `--sdm conda` users names the package's runtime dependencies."""

import re
import tomllib
from pathlib import Path

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
    wanted = {normalized(r) for r in project["dependencies"]} - NOT_IN_RULE_ENV
    env = yaml.safe_load((REPO / "envs" / "synful.yaml").read_text())
    requirements = pip_requirements(env)
    named = {normalized(r) for r in requirements}
    assert named == wanted
    assert "conda-forge" in env["channels"]
    # pinned, so the environment is reproducible
    assert all("==" in r for r in requirements), requirements
