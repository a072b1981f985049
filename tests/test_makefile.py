"""The Makefile's command lines, checked with `make -n` (nothing runs): defaults from the last
extraction, when the store is brought up to date, and the variables that become flags."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PY = ".venv/bin/python"


@pytest.fixture
def repo(tmp_path):
    """A folder with the Makefile and an empty cache/."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "cache").mkdir()
    return tmp_path


def make(repo, *args) -> list:
    """The recipe lines ``make -n`` prints (the virtual environment counted as ready)."""
    result = subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=repo,
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return [" ".join(line.split()) for line in result.stdout.replace("\\\n", " ").splitlines()]


def last_features(repo, **values):
    (repo / "cache" / "last-features.mk").write_text(
        "".join(f"LAST_{name.upper()} := {value}\n" for name, value in values.items()))


def test_later_targets_use_the_last_extraction_and_its_store(repo):
    """The design card: `make features DATASET=ravdess DATA_DIR=/data/ravdess`, then `make fuse
    METHOD=mfa`, then `make evaluate`: no re-extraction from the default folder."""
    last_features(repo, dataset="ravdess", data_dir="/data/ravdess", families="", vocal_channel="")
    (repo / "cache" / "ravdess").mkdir()
    (repo / "cache" / "ravdess" / "features.h5").touch()
    fuse = make(repo, "fuse", "METHOD=mfa")
    assert fuse == ["printf '%s (from the last make features)\\n' 'dataset ravdess'",
                    f"{PY} -m fusion --dataset ravdess --method mfa --protocol speaker --jobs 2"]
    evaluate = make(repo, "evaluate")
    assert evaluate[1:] == [f"{PY} -m fusion --dataset ravdess --method concat --protocol speaker --jobs 2",
                            f"{PY} -m classify evaluate --dataset ravdess --method concat --classifier svm "
                            "--jobs 2 --protocol speaker"]
    # An explicit DATA_DIR brings the store up to date first; `make features` re-runs the last one.
    assert make(repo, "fuse", "DATA_DIR=/elsewhere")[1].startswith(
        f"{PY} -m features extract --dataset ravdess --data-dir /elsewhere --jobs 2 --no-progress")
    features = make(repo, "features")
    assert features[0] == "printf '%s (from the last make features)\\n' 'dataset ravdess' 'data folder /data/ravdess'"
    assert features[1] == f"{PY} -m features extract --dataset ravdess --data-dir /data/ravdess --jobs 2"


def test_no_store_yet_extracts_and_another_dataset_uses_its_own_folder(repo):
    last_features(repo, dataset="ravdess", data_dir="/data/ravdess", families="mfcc,pitch", vocal_channel="song")
    fuse = make(repo, "fuse")  # no store: the last extraction is resumed with its options
    assert fuse[1] == (f"{PY} -m features extract --dataset ravdess --data-dir /data/ravdess --jobs 2 "
                       "--families mfcc,pitch --vocal-channel song --no-progress || [ $? -eq 3 ]")
    assert "'families mfcc,pitch' 'vocal channel song'" in fuse[0]
    cremad = make(repo, "features", "DATASET=cremad")
    assert cremad == [f"{PY} -m features extract --dataset cremad --data-dir data/cremad --jobs 2"]
    assert make(repo, "corpus") == [f"{PY} -m extract corpus --out data/synthetic --actors 8 --seed 0"]


def test_variables_become_flags(repo):
    (repo / "cache" / "synthetic").mkdir()
    (repo / "cache" / "synthetic" / "features.h5").touch()
    lines = make(repo, "evaluate", "DATASET=synthetic", "METHOD=mfa", "PROTOCOL=loso", "SNORM=enrol:8",
                 "PARAMS=mfa__k2=400,mfa__k1=7", "CLASSIFIER=light")
    assert lines == [f"{PY} -m fusion --dataset synthetic --method mfa --protocol loso --jobs 2 --speaker-norm enrol:8 "
                     "--param mfa__k2=400 --param mfa__k1=7",
                     f"{PY} -m classify evaluate --dataset synthetic --method mfa --classifier light "
                     "--jobs 2 --protocol loso --speaker-norm enrol:8"]
    none = make(repo, "evaluate", "DATASET=synthetic", "SNORM=none")
    assert "--speaker-norm" not in none[0] and none[1].endswith("--protocol speaker --speaker-norm none")
    features = make(repo, "features", "DATASET=synthetic", "DATA_DIR=d", "VOCAL_CHANNEL=song", "FAMILIES=mfcc")
    assert features[-1] == f"{PY} -m features extract --dataset synthetic --data-dir d --jobs 2 --families mfcc " \
                           "--vocal-channel song"


def demo_recipe(repo) -> list:
    """The command lines of `make demo`, its sub-makes printed as `make ...` (nothing runs)."""
    result = subprocess.run(["make", "-n", "-o", ".venv/.installed", "--no-print-directory", "demo",
                             "MAKE=echo make"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [line.removeprefix("echo ") for line in result.stdout.splitlines()]


def test_demo_evaluates_the_random_split_too(repo):
    recipe = demo_recipe(repo)
    assert "make evaluate DATASET=synthetic METHOD=concat PROTOCOL=random CLASSIFIER=light" in recipe
    assert "make features DATASET=synthetic DATA_DIR=data/synthetic" in recipe
    # every method fused before the first evaluation: nested selection runs once
    fused = [i for i, line in enumerate(recipe) if line.startswith("make fuse DATASET=synthetic METHOD=")]
    evaluated = [i for i, line in enumerate(recipe) if line.startswith("make evaluate DATASET=synthetic METHOD=")]
    assert len(fused) == 3 and max(fused) < min(evaluated)


def test_demo_fixes_mfa_and_zebra_at_documented_settings_in_fusion_and_evaluation(repo):
    """The demo's MFA is MarginalFisherAnalysis's defaults with the projection appended (one
    candidate: no inner search) and its zebra a small budget; the evaluation passes the same PARAMS, so nested selection, which
    reads them from the fused output, refits with them too."""
    from fusion.__main__ import _param
    from fusion.mfa import MarginalFisherAnalysis, MarginalFisherAnalysisCV
    from fusion.zebra import ZebraFeatureSelector

    recipe = demo_recipe(repo)
    params = {}
    for method in ("concat", "mfa", "zebra"):
        lines = [line for line in recipe if f" DATASET=synthetic METHOD={method}" in line and "PROTOCOL" not in line]
        assert [line.split()[1] for line in lines] == ["fuse", "evaluate"]
        given = [dict(_param(flag) for flag in word.removeprefix("PARAMS=").split(","))
                 for line in lines for word in line.split() if word.startswith("PARAMS=")]
        assert len(given) in (0, 2) and given[:1] == given[1:]
        params[method] = given[0] if given else {}
    assert params["concat"] == {}
    mfa = {key.removeprefix("mfa__"): value for key, value in params["mfa"].items()}
    defaults = MarginalFisherAnalysis().get_params()
    assert mfa == {key: defaults[key] for key in mfa} | {"append": True} and not defaults["append"]
    assert len(MarginalFisherAnalysisCV(**mfa)._candidates(n_blocks=2)) == 1
    zebra = {key.removeprefix("zebra__"): value for key, value in params["zebra"].items()}
    assert zebra == {"budget": 20, "n_zebras": 5} and ZebraFeatureSelector().budget == 100
