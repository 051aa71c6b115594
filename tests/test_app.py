"""AppTest of the explorer's image pages: first load, controls changing state, errors shown as messages."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from tests.app_support import errors, open_page, run, tiny_cohort_env


@pytest.fixture(scope="module", autouse=True)
def tiny_cohort(tmp_path_factory):
    """One private data folder with the 'tiny' synthetic cohort for every test here (generated once)."""
    yield from tiny_cohort_env(tmp_path_factory.mktemp("app-data"))


_run = run


def test_image_lab_first_load(tiny_cohort):
    at = _run(open_page("Image lab"))
    assert not errors(at)
    assert [h.value for h in at.header] == ["Image lab"]
    assert at.sidebar.selectbox(key="src_kind").value == "Synthetic cohort"
    assert at.sidebar.radio(key="src_preset").value == "tiny"
    params = at.session_state["lab_last_params"]
    assert params.perturbation == "lowpass" and params.radius == 2.0
    captions = " ".join(c.value for c in at.caption)
    assert "ImagerPixelSpacing" in captions and "server time for this update" in captions
    (viewer,) = at.get("bidi_component")  # the linked panels (explorer/ui/viewer.py)
    assert viewer.proto.component_name == "mammo_lab_viewer"


def test_radius_slider_changes_the_view(tiny_cohort):
    at = _run(open_page("Image lab"))
    slider = at.select_slider(key="lab_radius")
    options = [float(o.split()[0]) for o in slider.options]
    assert options == sorted(options) and 2.0 in options and len(options) > 20
    target = min(options, key=lambda v: abs(v - 0.5))
    slider.set_value(target)
    _run(at)
    assert at.session_state["lab_last_params"].radius == target
    assert f"R = {target:g} cycles/mm" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize(
    ("name", "key", "value", "field"),
    [
        ("noise", "lab_std", 800.0, "std"),
        ("shuffle", "lab_grid", 4, "grid"),
        ("highpass", "lab_radius", None, None),
    ],
)
def test_each_perturbation_renders(tiny_cohort, name, key, value, field):
    at = _run(open_page("Image lab"))
    at.radio(key="lab_pert").set_value(name)
    _run(at)
    assert at.session_state["lab_last_params"].perturbation == name
    if value is not None:
        # the noise std is a snapped select-slider with an exact input beside it (issue 14)
        widget = at.select_slider(key=key) if name == "noise" else at.slider(key=key)
        widget.set_value(value)
        _run(at)
        assert getattr(at.session_state["lab_last_params"], field) == value
    assert not errors(at)


def test_window_level_custom_and_invert(tiny_cohort):
    at = _run(open_page("Image lab"))
    presets = at.selectbox(key="lab_window").options
    assert "DICOM window" in presets  # the synthetic DICOMs carry a VOI window
    at.selectbox(key="lab_window").set_value("Custom")
    _run(at)
    at.slider(key="lab_level").set_value(1500.0)
    at.toggle(key="lab_invert").set_value(True)
    _run(at)
    assert at.session_state["lab_level"] == 1500.0 and at.session_state["lab_invert"] is True
    assert not errors(at)


def test_reset_to_the_dicom_window(tiny_cohort):
    at = _run(open_page("Image lab"))
    assert at.selectbox(key="lab_window").value == "DICOM window"  # a DICOM opens on its own window (#14)
    at.selectbox(key="lab_window").set_value("Auto (breast 1-99 %)")
    _run(at)
    assert at.selectbox(key="lab_window").value == "Auto (breast 1-99 %)"
    next(b for b in at.button if b.label == "Reset to DICOM window").click()
    _run(at)
    assert at.selectbox(key="lab_window").value == "DICOM window"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Level": "2048", "Width": "4096"}  # the phantom DICOMs' VOI window


def test_spacing_override_changes_frequencies(tiny_cohort):
    at = _run(open_page("Image lab"))
    at.sidebar.checkbox(key="src_override").check()
    _run(at)
    at.sidebar.number_input(key="src_sp_row").set_value(0.05)
    at.sidebar.number_input(key="src_sp_col").set_value(0.05)
    _run(at)
    caption = " ".join(c.value for c in at.caption)
    assert "spacing 0.05×0.05 mm (set by you; the file said ImagerPixelSpacing" in caption
    options = [float(o.split()[0]) for o in at.select_slider(key="lab_radius").options]
    assert max(options) == pytest.approx(np.hypot(10, 10), rel=1e-3)  # corner frequency at 0.05 mm


def test_bad_upload_shows_an_error_not_a_traceback(tiny_cohort):
    at = _run(open_page("Image lab", {"src_kind": "Upload"}))
    rng = np.random.default_rng(1)
    at.sidebar.get("file_uploader")[0].set_value(("garbage.dcm", rng.bytes(4096), "application/dicom"))
    _run(at)
    msgs = [e.value for e in at.error]
    assert msgs and msgs[0].startswith("upload-") and "not a recognised image file" in msgs[0]
    assert "garbage" not in msgs[0]  # the upload's file name is never shown back (it may carry a name)
    assert "Traceback" not in msgs[0]


def test_good_upload_is_shown(tiny_cohort):
    from core.manifest import read_manifest

    row = read_manifest(tiny_cohort).iloc[1]
    data = Path(row["path"]).read_bytes()
    at = _run(open_page("Image lab", {"src_kind": "Upload"}))
    at.sidebar.get("file_uploader")[0].set_value((f"{row['image_id']}.dcm", data, "application/dicom"))
    _run(at)
    assert not errors(at)
    caption = " ".join(c.value for c in at.caption)
    assert re.search(r"\*\*upload-[0-9a-f]{10}\*\* \(upload\)", caption) and "ImagerPixelSpacing" in caption
    assert f"{row['image_id']}.dcm" not in caption  # a pseudonym, not the file name
    assert at.session_state["lab_last_params"].perturbation == "lowpass"


def test_missing_server_path_is_reported(tiny_cohort):
    missing = tiny_cohort.parent / "nope.dcm"  # inside the data folder, an allowed root
    at = _run(open_page("Image lab", {"src_kind": "Server path", "src_path": str(missing)}))
    assert any("no such file" in e.value for e in at.sidebar.error)


def test_png_and_dicom_export(tiny_cohort):
    at = _run(open_page("Image lab"))
    assert at.get("download_button"), "the PNG download button is missing"
    at.button(key="lab_prep_dcm").click()
    _run(at)
    assert not errors(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download perturbed DICOM" in labels
    params, data, note = at.session_state["lab_dicom"]
    assert params.perturbation == "lowpass" and data[128:132] == b"DICM"


def test_highpass_dicom_export_is_shifted_not_clipped(tiny_cohort):
    """A zero-mean high-pass image is exported shifted to mid-range, and the page says so."""
    import pydicom

    at = _run(open_page("Image lab"))
    at.radio(key="lab_pert").set_value("highpass")
    _run(at)
    at.button(key="lab_prep_dcm").click()
    _run(at)
    assert not errors(at)
    params, data, note = at.session_state["lab_dicom"]
    assert params.perturbation == "highpass" and "shifted by +2048" in note
    assert any("DICOM export" in w.value for w in at.warning)
    stored = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert 1500 < float(stored.mean()) < 2600  # centred on the offset, not half clipped at 0


def test_open_in_lab_with_a_requested_perturbation(tiny_cohort):
    at = _run(
        open_page("Image lab", {"lab_pending": {"perturbation": "lowpass", "parameter": 0.9, "seed": 0}})
    )
    radius = at.session_state["lab_last_params"].radius
    assert radius == 0.9  # exactly the requested parameter (issue 14; it was the nearest slider stop)


def test_png_export_is_the_view_shown(tiny_cohort):
    """The native-resolution inspector is gone (#14: the panels themselves reach native pixels); the PNG
    export shows the panels of the current view, titled with the same R as the caption."""
    from PIL import Image

    from explorer.ui.lab import export_png

    at = _run(open_page("Image lab"))
    at.button(key="lab_native").click()
    _run(at)
    lab_view = at.session_state["lab_last_view"]
    assert lab_view.tile.native
    png = export_png(lab_view, "x.dcm")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width > 4 * 256
    assert "R = 2 cycles/mm" in lab_view.titles["perturbed"]


@pytest.mark.slow
def test_real_nyu_sample_flags_assumed_spacing(nyu_samples):
    at = _run(open_page("Image lab", {"src_kind": "NYU samples"}))
    assert at.sidebar.selectbox(key="src_nyu_file").value == "dmv_1_R_CC.png"
    assert any("assumed" in w.value for w in at.warning)
    assert "3328×2560 px" in " ".join(c.value for c in at.caption)
    assert not errors(at)


def test_calcifications_page_jumps_to_a_cluster(tiny_cohort):
    at = _run(open_page("Calcifications"))
    assert [h.value for h in at.header] == ["Calcifications"]
    at.button(key="calc_jump").click()
    _run(at)
    assert not errors(at)
    assert at.radio(key="calc_source").value == "Ground truth (synthetic cohort)"
    image_id = at.session_state["src_image_id"]
    assert image_id in " ".join(c.value for c in at.caption)
    n_truth = int(next(c.value for c in at.caption if "ground-truth calcification" in c.value).split()[0])
    assert n_truth >= 1
    strips = at.image
    assert len(strips) == min(4, n_truth)
    assert all("microcalc" in img.proto.imgs[0].caption for img in strips)
    assert len(at.get("plotly_chart")) == 1 + len(strips)  # overview + one visibility plot per strip


def test_calcifications_marked_spot(tiny_cohort):
    at = _run(open_page("Calcifications"))
    at.radio(key="calc_source").set_value("A spot I mark")
    _run(at)
    at.number_input(key="calc_y").set_value(20.0)
    at.number_input(key="calc_x").set_value(15.0)
    _run(at)
    assert not errors(at)
    assert len(at.image) == 1
