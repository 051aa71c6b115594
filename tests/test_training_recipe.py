"""The training experiments' recipe (examples/training, docs/training-experiments.md) stays runnable: its
shell script is valid bash, its training options parse with the real ``mammo-robust train`` parser and say
what the page says, its sweep config loads, and the page's figures exist and stay small."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from core.cli import build_parser
from core.runs import load_config

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "examples" / "training" / "figures-2-4.sh"
SWEEP = ROOT / "examples" / "training" / "lowpass-sweep.toml"
PAGE = ROOT / "docs" / "training-experiments.md"


def _array(name: str) -> list[str]:
    """The words of the bash array ``name=( ... )`` in the recipe, with ``${THREADS:-1}`` at its default."""
    text = RECIPE.read_text()
    match = re.search(rf"^{name}=\((.*?)\)$", text, flags=re.S | re.M)
    assert match, f"{RECIPE.name}: no array {name}"
    return shlex.split(match.group(1).replace('"${THREADS:-1}"', "1"))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_recipe_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(RECIPE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "array, epochs, samples, save_every, init",
    [("common", 12, 512, 1, "init_trunk"), ("finetune", 6, 416, 2, "init")],
)
def test_recipe_training_options_parse(array, epochs, samples, save_every, init):
    words = _array(array)
    args = build_parser().parse_args(["train", "gmic", *words, "--out", "x.pt"])
    assert (args.epochs, args.samples_per_epoch, args.save_every) == (epochs, samples, save_every)
    assert getattr(args, init) == "assets/weights/gmic-demo-fast.pt"
    assert (ROOT / getattr(args, init)).is_file()
    assert args.spacing_mm == 0.3 and args.seed == 0 and args.augment == []
    filtered = build_parser().parse_args(
        ["train", "gmic", *words, "--augment", "lowpass:0.5", "--augment-prob", "1.0", "--out", "y.pt"]
    )
    assert filtered.augment == ["lowpass:0.5"] and filtered.augment_prob == 1.0


def test_recipe_sweep_config_loads():
    cfg = load_config(SWEEP)
    assert (cfg.model, cfg.weights, cfg.split, cfg.manifest) == ("gmic", "demo-fast", "test", "demo")
    assert cfg.parameters == {"lowpass": [0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0]}


def test_page_figures_exist_and_are_small():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", PAGE.read_text())
    assert len(images) >= 5
    for rel in images:
        path = PAGE.parent / rel
        assert path.is_file(), f"{PAGE.name}: missing figure {rel}"
        assert path.stat().st_size < 200_000, f"{rel} is {path.stat().st_size} bytes"
