"""The package's dependencies are the pins `make venv` installs."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pins(lines):
    return {line.split("==")[0].strip().lower(): line.strip() for line in lines
            if line.strip() and not line.lstrip().startswith("#")}


def test_pyproject_dependencies_match_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    required = _pins((REPO / "requirements.txt").read_text().splitlines())
    assert declared == required
    assert declared["torch"] == "torch==2.13.0"  # a range would pull a multi-GB CUDA build
