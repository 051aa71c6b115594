"""Sweeps of chosen values: explicit parameters in a run config, next to severities."""

from __future__ import annotations

import pytest

from core.perturb import PERTURBATIONS, PerturbationError
from core.runs import RunConfig, RunError, load_config
from core.runs.grid import EXPLICIT_SEVERITY, base_conditions, matched_conditions, matched_targets, norm_key


def test_explicit_parameters_become_conditions():
    cfg = RunConfig(
        model="gmic",
        manifest="tiny",
        perturbations={"lowpass": [2], "noise": [5]},
        parameters={"lowpass": [3, 2.5, 2, 1.5], "shuffle": [5, 8]},
    )
    assert cfg.parameters == {"lowpass": [1.5, 2.0, 2.5, 3.0], "shuffle": [5.0, 8.0]}
    conds = [(c.perturbation, c.severity, c.parameter) for c in base_conditions(cfg)]
    assert conds == [
        ("none", 0, 0.0),
        ("lowpass", 2, 2.0),  # R = 2 is on the grid: its severity, once
        ("lowpass", EXPLICIT_SEVERITY + 1, 3.0),  # the others by strength: weakest low-pass first
        ("lowpass", EXPLICIT_SEVERITY + 2, 2.5),
        ("lowpass", EXPLICIT_SEVERITY + 3, 1.5),
        ("noise", 5, 1600.0),
        ("shuffle", 5, 8.0),
        ("shuffle", EXPLICIT_SEVERITY + 1, 5.0),
    ]
    keys = [c.key for c in base_conditions(cfg)]
    assert len(keys) == len(set(keys))


def test_explicit_parameters_get_matched_baselines():
    cfg = RunConfig(model="gmic", manifest="x", parameters={"lowpass": [3, 1.5]}, matched_baseline=True)
    targets = matched_targets(cfg)
    norms = {norm_key(t): 100.0 * (i + 1) for i, t in enumerate(targets)}
    matched = matched_conditions(cfg, norms)
    assert [(m.perturbation, m.severity, m.parameter) for m in matched] == [
        ("matched-lowpass", EXPLICIT_SEVERITY + 1, 100.0),
        ("matched-lowpass", EXPLICIT_SEVERITY + 2, 200.0),
    ]


def test_toml_round_trip_and_old_configs(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        'model = "gmic"\nmanifest = "tiny"\n\n[perturbations]\nhighpass = [4]\n\n'
        "[parameters]\nlowpass = [3, 2.5, 2, 1.5]\n"
    )
    cfg = load_config(path)
    assert cfg.parameters == {"lowpass": [1.5, 2.0, 2.5, 3.0]} and cfg.perturbations == {"highpass": [4]}
    again = RunConfig.from_toml(cfg.to_toml())
    assert again == cfg and RunConfig.from_json(cfg.to_json()) == cfg
    old = RunConfig.from_json('{"model": "dmv", "manifest": "tiny", "perturbations": {"lowpass": [1]}}')
    assert old.parameters == {} and "[parameters]" not in old.to_toml()
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "gmic-lowpass-sweep.toml"
    assert load_config(example).parameters["lowpass"]


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"lowpass": [0]}, r"lowpass: radius must be a number in \(0, 100\]"),
        ({"lowpass": [float("inf")]}, "radius must be"),
        ({"noise": [-5]}, "std must be"),
        ({"shuffle": [2.5]}, "grid must be a whole number"),
        ({"shuffle": [1]}, "grid must be a whole number"),
        ({"highpass": ["2"]}, "must be a number"),
        ({"blur": [1]}, "unknown perturbation 'blur'"),
        ([1, 2], "must map a perturbation name"),
    ],
)
def test_bad_parameters_are_named(parameters, message):
    with pytest.raises(RunError, match=message):
        RunConfig(model="gmic", manifest="x", parameters=parameters)


def test_registry_limits_contain_the_grids():
    for pert in PERTURBATIONS.values():
        for value in pert.grid.values():
            assert pert.check_parameter(value) == value
        assert (
            pert.identity_parameter is None or not pert.limits[0] < pert.identity_parameter <= pert.limits[1]
        )
    with pytest.raises(PerturbationError, match="noise: std must be a number in"):
        PERTURBATIONS["noise"].check_parameter(0.0)
