"""The sidebar image-source chooser shared by every page, and the current image it selects.

The choice lives in ``st.session_state`` (widget keys prefixed ``src_``), so switching pages keeps the image.
Other pages pre-select an image with :func:`request_image` before ``st.switch_page``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import ExplorerError
from explorer.ui import loaders

SYNTHETIC = "Synthetic cohort"
NYU = "NYU samples"
SERVER = "Server path"
UPLOAD = "Upload"
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".tif", ".tiff"}
UPLOAD_TYPES = ["dcm", "dicom", "png", "tif", "tiff"]
# The cohort preset used when the user has not chosen one; MAMMO_EXPLORER_COHORT overrides (tests use "tiny").
DEFAULT_PRESET_ENV = "MAMMO_EXPLORER_COHORT"


@dataclass(frozen=True)
class ImageRef:
    """Where the current image comes from.

    ``path`` for files on the server, ``digest`` (sha1 of the bytes, kept in session state) for uploads;
    ``spacing_mm`` is the spacing passed to the loader (the manifest's value: used when the file records
    none), ``override_mm`` the user's spacing, which replaces whatever the file says; ``origin`` says in
    words where it came from; ``info`` holds manifest fields (exam id, labels) as (name, value) pairs.

    ``name`` is what the page shows and exports: a manifest's image id, a built-in sample's name, or, for a
    file the user named on the server or uploaded, a pseudonym (``img-...``, ``upload-...``), since file
    names may carry patient names. ``file_name`` is then the real name, given to the loader only (a PNG's
    laterality and view may come from it) and masked out of its messages.
    """

    origin: str
    name: str
    path: str | None = None
    digest: str | None = None
    spacing_mm: tuple[float, float] | None = None
    override_mm: tuple[float, float] | None = None
    info: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    manifest: str | None = None
    file_name: str | None = None

    @property
    def key(self) -> str:
        """A string that changes whenever the decoded image would change."""
        what = (
            f"upload:{self.digest}" if self.digest else f"path:{self.path}:{loaders.mtime(self.path or '')}"
        )
        return f"{what}:{self.spacing_mm}:{self.override_mm}"


def request_image(path: str | Path) -> None:
    """Make the sidebar select a server-side file on the next run (call before ``st.switch_page``).

    Stored under a plain key and applied by :func:`sidebar_source` before it draws its widgets, since a
    widget's value cannot be changed once the widget is drawn in a run.
    """
    st.session_state["src_pending_path"] = str(path)


def _default_preset() -> str:
    env = os.environ.get(DEFAULT_PRESET_ENV)
    if env in ("tiny", "demo"):
        return env
    from core.paths import data_dir

    demo_dir = data_dir() / "cohorts" / "demo-0"
    return "demo" if demo_dir.is_dir() and any(demo_dir.glob("*.csv")) else "tiny"


def _row_label(row: Any) -> str:
    lab = (
        "malignant"
        if int(row.get("label_malignant", 0) or 0)
        else ("benign" if int(row.get("label_benign", 0) or 0) else "normal")
    )
    side = f"{row.get('laterality', '')}-{row.get('view', '')}"
    return f"{row['image_id']}  ·  exam {row['exam_id']} {side}  ·  {lab}"


def _resolve(manifest: str, path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else Path(manifest).parent / p)


def _ref_from_manifest(manifest: str, origin: str, roots: tuple[str, ...] | None = None) -> ImageRef | None:
    df = loaders.read_manifest(manifest, loaders.mtime(manifest), roots)
    if len(df) == 0:
        st.sidebar.warning(f"{manifest}: the manifest lists no images")
        return None
    refused = [p for p in df.attrs.get("problems", []) if "outside the allowed folders" in p.message]
    if refused:
        st.sidebar.warning(
            f"{len(refused)} row(s) of this manifest refused: their image lies outside the folders this app "
            f"may read (first: {refused[0]})"
        )
    only_malignant = st.sidebar.checkbox("Only malignant breasts", key="src_only_malignant")
    rows = df[pd.to_numeric(df["label_malignant"], errors="coerce") == 1] if only_malignant else df
    if len(rows) == 0:
        st.sidebar.info("No malignant breast in this cohort; showing all.")
        rows = df
    labels = {str(r["image_id"]): _row_label(r) for _, r in rows.iterrows()}
    pick = st.sidebar.selectbox("Image", list(labels), format_func=labels.get, key="src_image_id")
    row = rows[rows["image_id"].astype(str) == pick].iloc[0]
    spacing = (float(row["spacing_row_mm"]), float(row["spacing_col_mm"]))
    info = tuple(
        (k, str(row[k]))
        for k in ("image_id", "exam_id", "patient_id", "label_benign", "label_malignant", "split")
        if k in row.index
    )
    return ImageRef(
        origin=origin,
        name=str(row["image_id"]),
        path=_resolve(manifest, str(row["path"])),
        spacing_mm=spacing,
        info=info,
        manifest=manifest,
    )


def _synthetic() -> ImageRef | None:
    sb = st.sidebar
    if "src_preset" not in st.session_state:
        st.session_state["src_preset"] = _default_preset()
    preset = sb.radio(
        "Cohort",
        ["tiny", "demo"],
        key="src_preset",
        horizontal=True,
        help="'tiny' is generated in seconds; 'demo' (the cohort the demo weights were trained on) takes "
        "a while the first time it is generated, then loads instantly.",
    )
    try:
        from core.paths import data_dir

        manifest = loaders.cohort_manifest(preset, 0, str(data_dir()))
    except ExplorerError as exc:
        sb.error(str(exc))
        return None
    return _ref_from_manifest(manifest, f"synthetic cohort '{preset}'")


def _nyu() -> ImageRef | None:
    from core.paths import nyu_samples_dir

    folder = Path(os.path.realpath(nyu_samples_dir()))
    files = sorted(p.name for p in folder.glob("*.png") if "_seg" not in p.name) if folder.is_dir() else []
    if not files:
        st.sidebar.info(f"No NYU sample images in {folder} (set MAMMO_NYU_SAMPLES).")
        return None
    default = files.index("dmv_1_R_CC.png") if "dmv_1_R_CC.png" in files else 0
    name = st.sidebar.selectbox("Sample", files, index=default, key="src_nyu_file")
    return ImageRef(origin=f"NYU sample data ({folder})", name=name, path=str(folder / name))


def _server() -> ImageRef | None:
    from core.access import allowed_roots, check_allowed
    from core.privacy import file_pseudonym

    sb = st.sidebar
    roots = allowed_roots()
    text = sb.text_input(
        "File, folder or manifest CSV on the server",
        key="src_path",
        help="Only inside the folders the operator allows (MAMMO_ALLOWED_ROOTS): "
        + ", ".join(str(r) for r in roots),
    ).strip()
    if not text:
        sb.caption("Give a DICOM/PNG/TIFF file, a folder of them, or a manifest CSV.")
        return None
    path = check_allowed(text, roots)  # before any stat: refused paths reveal nothing about the server
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and _readable(p, roots)
        )
        if not files:
            sb.error(f"{text}: no DICOM, PNG or TIFF files in this folder")
            return None
        pick = sb.selectbox("File", [p.name for p in files], key="src_server_pick")
        picked = path / pick
        return ImageRef(origin="server folder", name=file_pseudonym(picked), path=str(picked), file_name=pick)
    if not path.is_file():
        sb.error(f"{text}: no such file or folder")
        return None
    if path.suffix.lower() == ".csv":
        try:
            return _ref_from_manifest(str(path), "server manifest", tuple(str(r) for r in roots))
        except ExplorerError as exc:
            sb.error(str(exc))
            return None
    return ImageRef(origin="server file", name=file_pseudonym(path), path=str(path), file_name=path.name)


def _readable(path: Path, roots) -> bool:
    from core.access import is_allowed

    return path.is_file() and is_allowed(path, roots)


def _upload() -> ImageRef | None:
    from core.privacy import bytes_pseudonym

    up = st.sidebar.file_uploader("DICOM, PNG or TIFF", type=UPLOAD_TYPES, key="src_upload")
    if up is None:
        return None
    data = up.getvalue()
    digest = hashlib.sha1(data).hexdigest()
    # Kept in this session's memory only (never written to disk), one upload at a time.
    st.session_state.setdefault("src_upload_bytes", {}).clear()
    st.session_state["src_upload_bytes"][digest] = data
    return ImageRef(origin="upload", name=bytes_pseudonym(digest), digest=digest, file_name=up.name)


def _spacing_override(ref: ImageRef) -> ImageRef:
    sb = st.sidebar
    if not sb.checkbox("Override pixel spacing", key="src_override"):
        return ref
    c1, c2 = sb.columns(2)
    default = st.session_state.get("src_file_spacing") or ref.spacing_mm or (0.1, 0.1)
    row = c1.number_input("row mm", 0.01, 1.0, float(default[0]), 0.005, format="%.4f", key="src_sp_row")
    col = c2.number_input("col mm", 0.01, 1.0, float(default[1]), 0.005, format="%.4f", key="src_sp_col")
    return dataclasses.replace(ref, override_mm=(float(row), float(col)))


def sidebar_source() -> ImageRef | None:
    """Draw the image-source chooser in the sidebar; store and return the chosen :class:`ImageRef`."""
    from core.paths import nyu_samples_dir

    sb = st.sidebar
    sb.subheader("Image")
    pending = st.session_state.pop("src_pending_path", None)
    if pending:
        st.session_state["src_kind"] = SERVER
        st.session_state["src_path"] = pending
        st.session_state.pop("src_server_pick", None)
    kinds = [SYNTHETIC, SERVER, UPLOAD]
    if nyu_samples_dir().is_dir() and _nyu_allowed():
        kinds.insert(1, NYU)
    if st.session_state.get("src_kind") not in kinds:
        st.session_state["src_kind"] = SYNTHETIC
    kind = sb.selectbox("Source", kinds, key="src_kind")
    try:
        ref = {SYNTHETIC: _synthetic, NYU: _nyu, SERVER: _server, UPLOAD: _upload}[kind]()
    except ExplorerError as exc:
        sb.error(str(exc))
        ref = None
    if ref is not None:
        ref = _spacing_override(ref)
    st.session_state["image_ref"] = ref
    return ref


def _nyu_allowed() -> bool:
    from core.access import is_allowed
    from core.paths import nyu_samples_dir

    return is_allowed(nyu_samples_dir())


def load(ref: ImageRef) -> Any:
    """Decode the image ``ref`` points to (cached). Raises ``ExplorerError`` for bad input.

    A server path is checked against the allowed roots again here (a file may have been replaced by a link
    since it was chosen); messages about a pseudonymised file name it by its pseudonym.
    """
    try:
        mammo = _decode(ref)
    except ExplorerError as exc:
        if ref.file_name is None:
            raise
        text = str(exc)
        for real in filter(None, (ref.path, ref.file_name)):
            text = text.replace(real, ref.name)
        raise ExplorerError(text) from None
    if ref.file_name is not None:
        mammo = dataclasses.replace(mammo, source_name=ref.name)
    if ref.override_mm is None:
        st.session_state["src_file_spacing"] = tuple(mammo.spacing_mm)
        return mammo
    return dataclasses.replace(
        mammo, spacing_mm=ref.override_mm, spacing_source=f"set by you; the file said {mammo.spacing_source}"
    )


def _decode(ref: ImageRef) -> Any:
    from core.access import check_allowed

    if ref.digest:
        data = st.session_state.get("src_upload_bytes", {}).get(ref.digest)
        if data is None:
            raise ExplorerError(f"{ref.name}: the upload is no longer in this session; upload it again")
        return loaders.load_bytes(ref.digest, data, ref.file_name or ref.name, ref.spacing_mm)
    check_allowed(ref.path)
    name = ref.file_name or Path(ref.path).name
    return loaders.load_path(ref.path, loaders.mtime(ref.path), ref.spacing_mm, name)


def current_image(show_info: bool = True) -> tuple[ImageRef, Any] | None:
    """The current (ref, Mammogram), or None after showing why not (never a traceback)."""
    ref = st.session_state.get("image_ref")
    if ref is None:
        st.info("Choose an image in the sidebar.")
        return None
    try:
        mammo = load(ref)
    except ExplorerError as exc:
        st.error(str(exc))
        return None
    if show_info:
        image_info(ref, mammo)
    return ref, mammo


def image_info(ref: ImageRef, mammo: Any) -> None:
    """One line of facts about the image, with an assumed spacing flagged visibly."""
    h, w = mammo.pixels.shape
    sr, sc = mammo.spacing_mm
    src = mammo.spacing_source
    lat = mammo.laterality or "?"
    view = mammo.view or "?"
    extra = "  ·  ".join(
        f"{k} {v}" for k, v in ref.info if k in ("exam_id", "label_malignant", "label_benign")
    )
    st.caption(
        f"**{ref.name}** ({ref.origin})  ·  {h}×{w} px  ·  laterality **{lat}**, view **{view}**  ·  "
        f"spacing {sr:.4g}×{sc:.4g} mm ({src})" + (f"  ·  {extra}" if extra else "")
    )
    if getattr(mammo, "spacing_assumed", False) and ref.override_mm is None:
        st.warning(
            f"Pixel spacing is **assumed** ({sr:g} mm): the file does not record it. Frequencies in "
            "cycles/mm depend on it; set the true value under 'Override pixel spacing' in the sidebar."
        )
