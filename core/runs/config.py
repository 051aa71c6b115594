"""What a run is: :class:`RunConfig`, serialisable to JSON and TOML."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import RunError

MODELS = ("gmic", "dmv")
ENGINES = ("local", "ray")
# Perturbations whose result depends on the seed; the filters are deterministic and run with seed 0 only.
SEEDED = ("noise", "shuffle")


@dataclass
class RunConfig:
    """A robustness run: a model with weights, a cohort, and a grid of perturbations x severities x seeds.

    Attributes
    ----------
    model : {"gmic", "dmv"}
        GMIC scores each image; DMV scores each breast of a four-view exam.
    manifest : str
        Cohort manifest CSV (see :mod:`core.manifest`), or the name of a built-in synthetic cohort
        (``"tiny"``, ``"demo"``), generated on first use.
    weights : str
        ``"demo"`` (0.1 mm), ``"demo-fast"`` (0.3 mm), ``"random"`` or a weights file (see
        :func:`core.models.create_model`).
    perturbations : dict of str to list of int
        Registry name (``core.perturb.PERTURBATIONS``) -> severities 1..5 on its documented grid, e.g.
        ``{"lowpass": [1, 2, 3, 4], "highpass": [4], "noise": [5], "shuffle": [5]}``. The unperturbed
        condition is always included.
    parameters : dict of str to list of float
        Explicit parameter values per perturbation, in its unit, on top of the severities: e.g.
        ``{"lowpass": [3, 2.5, 2, 1.5]}`` radii in cycles/mm (TOML: a ``[parameters]`` table). Each value
        is checked against the registry's limits (``Perturbation.check_parameter``); a value on the grid
        becomes that severity, the others get severities from :data:`core.runs.grid.EXPLICIT_SEVERITY`
        up, in order of strength (see :func:`core.runs.grid.base_conditions`).
    seeds : list of int
        Seeds of the seeded perturbations (noise, shuffle, matched noise); filters run once.
    matched_baseline : bool
        Add, for every filter/shuffle condition, the study's matched-noise baseline (see
        :mod:`core.runs.grid`).
    split : str or None
        Only the manifest rows of this split (``"test"``...); None: every row.
    max_images : int or None
        Keep the first N images (GMIC) or the images of the first exams that hold N images (DMV), for
        quick looks; None: all.
    batch_size : int
        Model inputs per forward pass; also the images (GMIC) or exams (DMV) written per transaction.
    device : str or None
        ``"cuda"``, ``"cpu"``...; None: CUDA when present, else CPU.
    dmv_samples : int
        DMV augmented windows per view (NYU: 10); 0: one centred window (deterministic, fastest).
    name : str
        A label for people.
    engine : {"local", "ray"}
        ``"local"`` (default): one worker process on this machine, no Ray needed. ``"ray"``: the same grid on
        a Ray cluster with Ray Data (:mod:`core.runs.ray_engine`; needs the ``ray`` extra); scores land in
        the same store, written by the driver.
    address : str or None
        Ray engine: the cluster to join (``"ray://head:10001"``, ``"head:6379"``, ``"auto"``); None: the
        ``RAY_ADDRESS`` environment variable, else a local Ray started on this machine for the run.
    workers : int or None
        Ray engine: model actors (one GPU each where the cluster has GPUs); None: one per GPU of the
        cluster, else one.
    fast : bool
        The fast inference path (``channels_last``, ``inference_mode``; on CUDA pinned memory and, for
        GMIC, float16 autocast; see :func:`core.models.create_model`); False: the exact path.
    gpu_batch_size : int or None
        Model inputs per forward pass on a GPU; None: ``max(batch_size, 16)``. ``batch_size`` stays the
        CPU's.
    """

    model: str
    manifest: str
    weights: str = "demo"
    perturbations: dict[str, list[int]] = field(default_factory=dict)
    parameters: dict[str, list[float]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    matched_baseline: bool = False
    split: str | None = None
    max_images: int | None = None
    batch_size: int = 8
    device: str | None = None
    dmv_samples: int = 0
    name: str = ""
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    fast: bool = True
    gpu_batch_size: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> RunConfig:
        """Check every field; raises :class:`RunError` naming the field."""
        from core.perturb import PERTURBATIONS, SEVERITIES

        if self.model not in MODELS:
            raise RunError(f"run config: model must be one of {MODELS}, got {self.model!r}")
        if not isinstance(self.manifest, str) or not self.manifest:
            raise RunError("run config: manifest must be a manifest path or a synthetic cohort name")
        if not isinstance(self.perturbations, dict):
            raise RunError("run config: perturbations must map a perturbation name to a list of severities")
        clean: dict[str, list[int]] = {}
        for name, sevs in self.perturbations.items():
            if name not in PERTURBATIONS:
                raise RunError(
                    f"run config: unknown perturbation {name!r}; known: {', '.join(sorted(PERTURBATIONS))}"
                )
            sevs = [sevs] if isinstance(sevs, int) else list(sevs)
            for s in sevs:
                if isinstance(s, bool) or not isinstance(s, int) or s not in SEVERITIES:
                    raise RunError(
                        f"run config: {name} severities must be integers in {SEVERITIES}, got {s!r}"
                    )
            clean[name] = sorted(set(sevs))
        self.perturbations = clean
        self.parameters = _check_parameters(self.parameters)
        seeds = [self.seeds] if isinstance(self.seeds, int) else list(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise RunError(f"run config: seeds must be a non-empty list of integers >= 0, got {self.seeds!r}")
        self.seeds = sorted(set(seeds))
        if self.engine not in ENGINES:
            raise RunError(f"run config: engine must be one of {ENGINES}, got {self.engine!r}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise RunError(f"run config: address must be a Ray address such as 'auto', got {self.address!r}")
        for key in ("batch_size", "max_images", "dmv_samples", "workers", "gpu_batch_size"):
            value = getattr(self, key)
            low = 0 if key == "dmv_samples" else 1
            if value is None and key in ("max_images", "workers", "gpu_batch_size"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise RunError(f"run config: {key} must be an integer >= {low}, got {value!r}")
        self.matched_baseline = bool(self.matched_baseline)
        self.fast = bool(self.fast)
        return self

    def forward_batch_size(self, device_type: str) -> int:
        """Inputs per forward pass on a device type (``"cpu"``, ``"cuda"``): batches sized per device."""
        if device_type == "cuda":
            return self.gpu_batch_size or max(self.batch_size, 16)
        return self.batch_size

    # --- serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "run config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RunError(
                f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        missing = [k for k in ("model", "manifest") if k not in data]
        if missing:
            raise RunError(f"{source}: missing key(s) {', '.join(missing)}")
        try:
            return cls(**data)
        except RunError as exc:
            raise RunError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise RunError(f"{source}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "run config") -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise RunError(f"{source}: expected a JSON object")
        return cls.from_dict(data, source=source)

    def to_toml(self) -> str:
        """TOML text; ``None`` fields are left out (TOML has no null) and read back as their defaults."""
        lines = []
        for key, value in self.to_dict().items():
            if key in ("perturbations", "parameters") or value is None:
                continue
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
        lines.append("[perturbations]")
        for name, sevs in self.perturbations.items():
            lines.append(f"{name} = {json.dumps(sevs)}")
        if self.parameters:
            lines += ["", "[parameters]"]
            for name, values in self.parameters.items():
                lines.append(f"{name} = {json.dumps(values)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str, *, source: str = "run config") -> RunConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RunError(f"{source}: not valid TOML ({exc})") from None
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path) -> Path:
        """Write JSON (``.json``) or TOML (``.toml``)."""
        path = Path(path)
        text = self.to_toml() if path.suffix.lower() == ".toml" else self.to_json()
        path.write_text(text)
        return path


def _check_parameters(parameters: Any) -> dict[str, list[float]]:
    """Explicit parameter lists, each value checked by the registry; sorted, without repeats."""
    from core.perturb import PERTURBATIONS, PerturbationError

    if not isinstance(parameters, dict):
        raise RunError("run config: parameters must map a perturbation name to a list of values")
    clean: dict[str, list[float]] = {}
    for name, values in parameters.items():
        if name not in PERTURBATIONS:
            raise RunError(
                f"run config: parameters: unknown perturbation {name!r}; "
                f"known: {', '.join(sorted(PERTURBATIONS))}"
            )
        values = list(values) if isinstance(values, list | tuple) else [values]
        try:
            checked = [PERTURBATIONS[name].check_parameter(v) for v in values]
        except PerturbationError as exc:
            raise RunError(f"run config: parameters: {exc}") from None
        if checked:
            clean[name] = sorted(set(checked))
    return clean


def load_config(path: str | Path) -> RunConfig:
    """Read a run configuration from a ``.json`` or ``.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: run config file not found")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        return RunConfig.from_toml(text, source=str(path))
    return RunConfig.from_json(text, source=str(path))
