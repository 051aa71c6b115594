"""The 0.1 mm demo-weights recipe (``scripts/train-demo-weights-0.1mm.sh``, issue 17): valid bash, every
command it would run parses with the real ``mammo-robust`` parser at the official geometry and passes the
training options' checks, the stages chain their checkpoints, and its smoke mode runs every stage (at a
reduced geometry) and resumes by skipping finished stages."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from core.cli import build_parser
from core.cli.train import options_from_args
from core.models import ModelError
from core.training.options import check_modes, check_options, command_line

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "scripts" / "train-demo-weights-0.1mm.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MAMMO_ROBUST_DATA": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        ["bash", str(RECIPE), *args], capture_output=True, text=True, env=environ, cwd=ROOT, timeout=600
    )


def _commands(output: str) -> list[list[str]]:
    return [
        shlex.split(line[len("+ mammo-robust ") :]) for line in output.splitlines() if line.startswith("+ ")
    ]


def test_recipe_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(RECIPE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_dry_run_commands_parse_at_the_official_geometry(tmp_path):
    work = tmp_path / "work"
    done = _run(tmp_path, "--dry-run", str(work), EXTRA="1 2")
    assert done.returncode == 0, done.stderr
    assert not work.exists()  # a dry run writes nothing
    commands = _commands(done.stdout)
    assert [c[:4] for c in commands[:3]] == [["phantom", "--preset", "demo", "--seed"]] * 3
    trains = [build_parser().parse_args(c) for c in commands if c[0] == "train"]
    assert [Path(a.out).name for a in trains] == ["gmic-dense.pt", "gmic-top.pt", "gmic-whole.pt", "dmv.pt"]
    for args in trains:
        assert args.spacing_mm == 0.1 and args.cohort == "demo" and args.extra_train == ["demo-1", "demo-2"]
        options = options_from_args(args)
        check_modes(options, check_options(options))
        assert "--spacing-mm 0.1" in command_line(options) and options.channels_last
    dense, top, whole, dmv = trains
    for gmic in (dense, top, whole):
        assert gmic.arch == "gmic" and gmic.input_size == (2944, 1920) and gmic.input_size_mlo is None
        assert (gmic.K, gmic.crop_shape) == (6, (256, 256))
    assert dense.dense_target and dense.patch_size == 256 and dense.init is None
    assert (
        top.init == dense.out and top.freeze_trunk and top.unfreeze_stages == 1 and top.saliency_target == 1
    )
    assert whole.init == top.out and not whole.freeze_trunk and not whole.patch_size
    assert dmv.arch == "dmv" and dmv.init_trunk == whole.out and dmv.freeze_trunk
    assert (dmv.input_size, dmv.input_size_mlo) == ((2677, 1942), (2974, 1748))
    assert options_from_args(dmv).input_size == {"CC": (2677, 1942), "MLO": (2974, 1748)}
    assert "--input-size 2677x1942 --input-size-mlo 2974x1748" in command_line(options_from_args(dmv))

    skip_whole = _run(tmp_path, "--dry-run", str(work), WHOLE_EPOCHS="0", EXTRA="")
    trains = [build_parser().parse_args(c) for c in _commands(skip_whole.stdout) if c[0] == "train"]
    assert [Path(a.out).name for a in trains] == ["gmic-dense.pt", "gmic-top.pt", "dmv.pt"]
    assert trains[-1].init_trunk == trains[1].out and trains[0].extra_train == []
    from_trunk = _run(tmp_path, "--dry-run", str(work), DENSE_TRUNK="trunk.pt", EXTRA="")
    trains = [build_parser().parse_args(c) for c in _commands(from_trunk.stdout) if c[0] == "train"]
    assert [Path(a.out).name for a in trains] == ["gmic-top.pt", "gmic-whole.pt", "dmv.pt"]
    assert trains[0].init_trunk == "trunk.pt" and trains[0].init is None and trains[0].freeze_trunk
    check_modes(options_from_args(trains[0]), "gmic")
    until = _run(tmp_path, "--dry-run", str(work), UNTIL="top")
    assert [Path(c[-1]).name for c in _commands(until.stdout) if c[0] == "train"] == [
        "gmic-dense.pt",
        "gmic-top.pt",
    ]
    assert until.returncode == 0 and "stopped after stage top" in until.stdout
    assert _run(tmp_path, "--fast").returncode == 2


def test_gmic_refuses_a_separate_mlo_size():
    args = build_parser().parse_args(
        ["train", "gmic", "--out", "x.pt", "--input-size", "96x64", "--input-size-mlo", "112x64"]
    )
    with pytest.raises(ModelError, match="input-size-mlo is for DMV"):
        check_options(options_from_args(args))
    dmv = options_from_args(
        build_parser().parse_args(["train", "dmv", "--out", "x.pt", "--input-size-mlo", "112x64"])
    )
    assert dmv.input_size == {"CC": (672, 448), "MLO": (112, 64)}


@pytest.mark.slow
def test_smoke_runs_every_stage_and_resumes(tmp_path):
    from core.models import create_model

    work = tmp_path / "work"
    env = {"GEOMETRY": "reduced", "EXTRA": "", "WORKERS": "1"}
    done = _run(tmp_path, "--smoke", str(work), **env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("gmic-dense", "gmic-top", "gmic-whole", "dmv"):
        assert (work / f"{name}.pt").is_file() and (work / f"{name}-curves.csv").is_file()
    gmic = create_model("gmic", weights=work / "gmic-whole.pt", device="cpu").spec
    assert gmic.spacing_mm == 0.4 and gmic.input_size == {"CC": (736, 480), "MLO": (736, 480)}
    assert (
        gmic.config["K"] == 6 and "--init " + str(work / "gmic-top.pt") in gmic.config["training"]["command"]
    )
    dmv = create_model("dmv", weights=work / "dmv.pt", device="cpu").spec
    assert dmv.input_size == {"CC": (669, 485), "MLO": (743, 437)}
    assert dmv.config["training"]["init_trunk"] == "gmic-whole.pt"
    (work / "dmv.pt").unlink()
    again = _run(tmp_path, "--smoke", str(work), **env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [line for line in again.stdout.splitlines() if ": have " in line] == [
        f"stage {name}: have {work / file}"
        for name, file in (("dense", "gmic-dense.pt"), ("top", "gmic-top.pt"), ("whole", "gmic-whole.pt"))
    ]
    assert (work / "dmv.pt").is_file() and "stage dmv -> " in again.stdout

    # the one-lease driver: from the trunk of a dense stage made elsewhere, the other stages under one
    # deadline, each finished checkpoint shipped in parts of at most 15 MiB that join to the stage's file
    from core.training.checkpoints import write_trunk

    trunk = write_trunk(work / "gmic-dense.pt", tmp_path / "dense-trunk.pt")
    assert trunk.stat().st_size < (work / "gmic-dense.pt").stat().st_size / 3
    with pytest.raises(ModelError, match="missing keys"):
        create_model("gmic", weights=trunk, device="cpu")
    lease, shipped = tmp_path / "lease", tmp_path / "out"
    driver = subprocess.run(
        ["bash", str(ROOT / "scripts" / "device-demo-weights-0.1mm.sh"), str(shipped), "600", "--smoke"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "MAMMO_ROBUST_DATA": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **env,
             "WORK": str(lease), "DENSE_TRUNK": str(trunk), "OVERHEAD_S": "5"},
    )  # fmt: skip
    assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
    assert f"stage dense: trunk from {trunk}" in driver.stdout and "] done" in driver.stdout
    assert not (lease / "gmic-dense.pt").exists()
    top = create_model("gmic", weights=lease / "gmic-top.pt", device="cpu")
    dense = create_model("gmic", weights=work / "gmic-dense.pt", device="cpu")
    key = "ds_net.layer_list.2.0.conv1.weight"  # a frozen stage: the dense trunk's, through the trunk file
    torch.testing.assert_close(top.state_dict()[key], dense.state_dict()[key], atol=1e-3, rtol=1e-3)
    names = sorted(p.name for p in shipped.iterdir())
    assert names == ["dmv.pt.part00", "gmic-whole.pt.part00", "gmic-whole.pt.part01", "logs.tar.gz"]
    for name in ("dmv.pt", "gmic-whole.pt"):
        parts = sorted(shipped.glob(f"{name}.part*"))
        assert all(p.stat().st_size <= 15 * 2**20 for p in parts)
        assert b"".join(p.read_bytes() for p in parts) == (lease / name).read_bytes()
    import tarfile

    with tarfile.open(shipped / "logs.tar.gz") as logs:
        assert {"./top.log", "./dmv.log", "./whole.log"} <= set(logs.getnames())


@pytest.mark.slow
def test_resume_pauses_a_stage_and_the_next_call_continues_it(tmp_path):
    """RESUME=1: a time budget pauses the top stage after its first epoch and ends the recipe; the next call
    skips dense and continues the top stage to its last epoch."""
    work = tmp_path / "work"
    env = {"GEOMETRY": "reduced", "EXTRA": "", "WORKERS": "1", "RESUME": "1", "TOP_MIN": "0", "UNTIL": "top"}
    first = _run(tmp_path, "--smoke", str(work), **env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "stage top paused by its time budget" in first.stdout
    assert (work / "gmic-top.resume.pt").is_file() and (work / "gmic-top.pt").is_file()
    second = _run(tmp_path, "--smoke", str(work), **env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "stage dense: have" in second.stdout and "resuming after epoch 1 of 2" in second.stdout
    assert "stopped after stage top" in second.stdout and not (work / "gmic-top.resume.pt").exists()
    log = (work / "top.log").read_text()
    assert "epoch 1:" in log and "epoch 2:" in log  # both calls' lines, appended
