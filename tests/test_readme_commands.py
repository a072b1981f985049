"""Every ```sh block of README.md runs as written, in order, in a temporary copy of the repository.

A block preceded by ``<!-- readme-test: skip: REASON -->`` is not run (it needs a corpus of the
user's own); one preceded by ``<!-- readme-test: long: REASON -->`` runs only with
``EMOFUSE_README_LONG=1``.  Blocks naming ``../shared/data`` are skipped where it is absent.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MARKER = re.compile(r"^<!-- readme-test: (skip|long): (.+) -->$")


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    text: str
    marker: str = ""  # "", "skip" or "long"
    reason: str = ""

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks(text: str) -> list:
    """The ```sh blocks of a Markdown text, each with the marker on the line before its fence.

    Raises ValueError for a marker line not followed by a ```sh block, or an unclosed block.
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if lines[i].strip().startswith("<!-- readme-test") and not marker:
            raise ValueError(f"README.md:{i + 1}: a readme-test marker is `<!-- readme-test: skip|long: REASON -->`")
        if marker and (i + 1 >= len(lines) or lines[i + 1].strip() != "```sh"):
            raise ValueError(f"README.md:{i + 1}: readme-test marker not followed by a ```sh block")
        if lines[i].strip() == "```sh":
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise ValueError(f"README.md:{i + 1}: unclosed ```sh block")
            before = MARKER.match(lines[i - 1].strip()) if i else None
            blocks.append(Block(i + 1, "\n".join(lines[i + 1:end]) + "\n", *(before.groups() if before else ())))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks((REPO / "README.md").read_text())


def test_blocks_and_markers_are_well_formed():
    assert BLOCKS, "README.md has no ```sh block"
    for block in BLOCKS:
        if not block.marker:
            assert not re.search(r"(^|\s)/data/", block.text), \
                f"{block.name} needs a corpus of the user's own: mark it <!-- readme-test: skip: REASON -->"
    with pytest.raises(ValueError, match="README.md:2: readme-test marker not followed"):
        readme_blocks("text\n<!-- readme-test: skip: no -->\nmore\n")
    [block] = readme_blocks("<!-- readme-test: long: slow -->\n```sh\nmake demo\n```\n")
    assert (block.line, block.text, block.marker, block.reason) == (2, "make demo\n", "long", "slow")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A copy of the repository's tracked files (no cache/, data/ or reports/), sharing its
    virtual environment, with ../shared beside it where the real one exists."""
    if shutil.which("make") is None or not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs GNU make and the repository's .venv")
    root = tmp_path_factory.mktemp("readme")
    copy = root / REPO.name
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    files = [f for f in listed.stdout.split("\0") if f] if listed.returncode == 0 else None
    if files is None:
        shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "cache", "data",
                                                                                 "reports", "__pycache__"))
    for name in files or []:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    (copy / "cache").mkdir(exist_ok=True)
    (copy / ".venv").symlink_to(REPO / ".venv")
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED)
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=copy, env=_env()).returncode != 0:
        pytest.skip("the repository's .venv is older than its requirements: run `make venv` first")
    return copy


def _env() -> dict:
    """The environment without the make variables of a `make test` that may be running us."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_block_runs_as_written(block, workspace):
    if block.marker == "skip":
        pytest.skip(f"{block.name}: {block.reason}")
    if block.marker == "long" and not os.environ.get("EMOFUSE_README_LONG"):
        pytest.skip(f"{block.name}: {block.reason} (EMOFUSE_README_LONG=1 runs it)")
    if "../shared/data" in block.text and not (SHARED / "data").is_dir():
        pytest.skip("../shared/data is absent")
    result = subprocess.run(["bash", "-e", "-c", block.text], cwd=workspace, capture_output=True, text=True,
                            env=_env(), timeout=1800)
    assert result.returncode == 0, f"{block.name} failed:\n{block.text}\n{(result.stdout + result.stderr)[-4000:]}"
