"""The dependency pins agree everywhere they are written down.

pyproject.toml is the source of truth. environment.yml (conda route), the rules' conda
environment workflow/envs/metapool.yaml and constraints.txt (the full `pip freeze` lock
used by `make`) must name the same packages at the same versions.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]

# conda package name -> PyPI requirement name (with extras) where they differ
CONDA_TO_PYPI = {
    "snakemake": "snakemake[reports]",  # bioconda's full package has the report deps
    "matplotlib-base": "matplotlib",  # matplotlib without GUI toolkits
}
# What the rule jobs do not need: they run inside a Snakemake process already.
NOT_IN_RULE_ENV = {"snakemake[reports]"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirement: str) -> tuple[str, str]:
    """'name[extra]==1.2' -> ('name[extra]', '1.2'); fails unless pinned exactly."""
    req = Requirement(requirement)
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"not pinned: {requirement}"
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return norm(req.name) + extras, specs[0].version


@pytest.fixture(scope="module")
def pyproject():
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


@pytest.fixture(scope="module")
def runtime(pyproject):
    return dict(pinned(r) for r in pyproject["dependencies"])


@pytest.fixture(scope="module")
def extras(pyproject):
    return {
        name: dict(pinned(r) for r in reqs)
        for name, reqs in pyproject["optional-dependencies"].items()
    }


def conda_env(path: Path) -> tuple[str | None, dict[str, str], list[str]]:
    """(python spec, {pypi name: version}, other pip lines) of a conda env file."""
    env = yaml.safe_load(path.read_text())
    python, packages, other = None, {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-"):
                    other.append(line)
                else:
                    name, version = pinned(line)
                    packages[name] = version
            continue
        name = re.split(r"[=<>!~ ]", dep, maxsplit=1)[0]
        if name == "pip":
            continue
        if name == "python":
            python = dep[len("python") :].lstrip("=")
            continue
        assert "==" in dep, f"{path.name}: not pinned exactly: {dep}"
        version = dep.split("==", 1)[1].strip()
        key = CONDA_TO_PYPI.get(name, norm(name))
        assert key not in packages, f"{path.name}: {key} listed twice"
        packages[key] = version
    return python, packages, other


def test_environment_yml_matches_pyproject(pyproject, runtime, extras):
    python, packages, other = conda_env(REPO / "environment.yml")
    expected = dict(runtime)
    for group in extras.values():
        expected.update(group)
    assert packages == expected
    assert other == ["-e ."], "environment.yml must install metapool itself"
    assert SpecifierSet(pyproject["requires-python"]).contains(python + ".0")


def test_rule_env_matches_pyproject(pyproject, runtime):
    python, packages, other = conda_env(REPO / "workflow" / "envs" / "metapool.yaml")
    expected = {k: v for k, v in runtime.items() if k not in NOT_IN_RULE_ENV}
    assert packages == expected
    assert other == []  # metapool itself comes from metapool.post-deploy.sh
    assert (REPO / "workflow" / "envs" / "metapool.post-deploy.sh").is_file()
    assert SpecifierSet(pyproject["requires-python"]).contains(python + ".0")


def test_constraints_pin_every_direct_dependency(runtime, extras):
    """`make` installs with -c constraints.txt: runtime and dev at the pyproject pins."""
    locked = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = pinned(line)
            locked[name] = version
    direct = {**runtime, **extras["dev"]}
    for name, version in direct.items():
        base = name.split("[", 1)[0]
        assert locked.get(base) == version, f"constraints.txt: {base} != {version}"
