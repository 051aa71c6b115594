"""AppTest of the image lab's state: one parameter in slider, caption, view and exports through any sequence
of actions; the zoomed view kept across control changes; a drill-down opens exactly its parameter."""

from __future__ import annotations

import json

import pytest

from tests.app_support import errors, open_page, run, tiny_cohort_env


@pytest.fixture(scope="module", autouse=True)
def tiny_cohort(tmp_path_factory):
    yield from tiny_cohort_env(tmp_path_factory.mktemp("lab-data"))


def _caption(at) -> str:
    return next(c.value for c in at.caption if "server time for this update" in c.value)


def _data(at) -> dict:
    """The payload the viewer component received in the last run."""
    (element,) = at.get("bidi_component")
    return json.loads(element.proto.json)


def _radius_everywhere(at) -> set[float]:
    """The radius as the slider, the exact input, the panels' caption and the viewer's data show it."""
    caption = _caption(at)
    shown = float(caption.split("R = ")[1].split()[0])
    return {
        float(at.select_slider(key="lab_radius").value),
        float(at.number_input(key="lab_radius_exact").placeholder),
        at.session_state["lab_last_params"].radius,
        shown,
        float(_data(at)["radius"]),
    }


def _type(at, name: str, value: float) -> None:
    """Type a value into the slider's "Type any ..." form and submit it."""
    at.number_input(key=f"{name}_exact").set_value(value)
    at.button(key=f"{name}_set").click()
    run(at)


def test_radius_grid_holds_the_study_values_exactly():
    at = run(open_page("Image lab"))
    options = [float(o.split()[0]) for o in at.select_slider(key="lab_radius").options]
    for value in (4.0, 2.0, 1.0, 0.5, 0.25):
        assert value in options
    near_two = [v for v in options if v != 2.0 and abs(v / 2.0 - 1) < 0.05]
    assert near_two == []  # no 1.98 next to 2
    assert _radius_everywhere(at) == {2.0}


@pytest.mark.parametrize(
    "sequence",
    [["shuffle", "noise", "lowpass"], ["noise", "lowpass"], ["shuffle", "lowpass", "highpass", "lowpass"]],
)
def test_slider_and_caption_agree_after_switching_perturbations(sequence):
    at = run(open_page("Image lab"))
    at.select_slider(key="lab_radius").set_value(0.5)
    run(at)
    assert _radius_everywhere(at) == {0.5}
    for name in sequence:
        at.radio(key="lab_pert").set_value(name)
        run(at)
        assert at.session_state["lab_last_params"].perturbation == name
        if name == "noise":
            at.select_slider(key="lab_std").set_value(800.0)
            run(at)
        elif name == "shuffle":
            at.slider(key="lab_grid").set_value(4)
            run(at)
    assert _radius_everywhere(at) == {0.5}
    at.toggle(key="lab_invert").set_value(True)  # the next unrelated change must not move R either
    run(at)
    assert _radius_everywhere(at) == {0.5}
    assert not errors(at)


def test_noise_and_grid_survive_a_trip_through_the_filters():
    at = run(open_page("Image lab"))
    at.radio(key="lab_pert").set_value("noise")
    run(at)
    _type(at, "lab_std", 523.7)
    assert at.select_slider(key="lab_std").value == 523.7
    at.radio(key="lab_pert").set_value("lowpass")
    run(at)
    at.radio(key="lab_pert").set_value("noise")
    run(at)
    assert at.select_slider(key="lab_std").value == 523.7
    assert at.session_state["lab_last_params"].std == 523.7
    assert "std 523.7" in _caption(at)


def test_exact_radius_is_kept_and_shown_on_the_slider():
    at = run(open_page("Image lab"))
    _type(at, "lab_radius", 1.234)
    assert _radius_everywhere(at) == {1.234}
    at.select_slider(key="lab_radius").set_value(1.0)
    run(at)
    assert _radius_everywhere(at) == {1.0}


@pytest.mark.parametrize(("name", "value", "field"), [("lowpass", 0.5, "radius"), ("noise", 523.7, "std")])
def test_drill_down_opens_exactly_the_parameter(name, value, field):
    pending = {"perturbation": name, "parameter": value, "seed": 3}
    at = run(open_page("Image lab", {"lab_pending": pending}))
    params = at.session_state["lab_last_params"]
    assert params.perturbation == name and getattr(params, field) == value
    if name == "lowpass":
        assert _radius_everywhere(at) == {value}


def _zoom(at, view: dict) -> None:
    """What the browser's view report does (viewer.on_view stores it under lab_view)."""
    state = dict(at.session_state["lab_view"])
    state["view"] = view
    state["screen"] = [400, 260]
    at.session_state["lab_view"] = state


def test_zoom_survives_every_control_change():
    at = run(open_page("Image lab"))
    zoom = {"top": 300.0, "left": 200.0, "bottom": 400.0, "right": 265.0}
    _zoom(at, zoom)
    run(at)

    def check():
        data = _data(at)
        assert data["rendered_view"] == pytest.approx(zoom)
        assert data["view"] == pytest.approx(zoom)
        tile = at.session_state["lab_last_view"].tile
        assert tile.bounds == (300, 400, 200, 265) and tile.native
        assert "native pixels" in _caption(at)

    check()
    steps = [
        lambda: at.select_slider(key="lab_radius").set_value(1.0),
        lambda: at.radio(key="lab_pert").set_value("noise"),
        lambda: at.radio(key="lab_pert").set_value("lowpass"),
        lambda: at.toggle(key="lab_invert").set_value(True),
        lambda: at.selectbox(key="lab_window").set_value("Full range"),
        lambda: at.selectbox(key="lab_panel").set_value(768),
        lambda: at.radio(key="lab_layout").set_value("grid"),
        lambda: at.radio(key="lab_diff_mode").set_value("signed"),
        lambda: at.selectbox(key="lab_spectrum").set_value("perturbed"),
    ]
    for step in steps:
        step()
        run(at)
        check()
    assert not errors(at)


def test_native_button_zooms_to_native_pixels_on_the_breast():
    at = run(open_page("Image lab"))
    assert not at.session_state["lab_last_view"].tile.native
    token = _data(at)["token"]
    at.button(key="lab_native").click()
    run(at)
    data = _data(at)
    assert data["token"] == token + 1  # the browser adopts Python's view
    tile = at.session_state["lab_last_view"].tile
    assert tile.native and tile.max_frequency_mm == pytest.approx(5.0)


def test_a_new_image_starts_on_the_whole_image():
    at = run(open_page("Image lab"))
    _zoom(at, {"top": 300.0, "left": 200.0, "bottom": 400.0, "right": 265.0})
    run(at)
    options = at.sidebar.selectbox(key="src_image_id").options  # "<image id>  ·  exam ..."
    other = options[1].split()[0]
    assert other != at.session_state["src_image_id"]
    at.session_state["src_image_id"] = other
    run(at)
    data = _data(at)
    assert data["rendered_view"]["top"] == 0.0 and data["tile"]["bounds"][0] == 0


def test_payload_sends_unchanged_arrays_once():
    at = run(open_page("Image lab"))
    first = _data(at)
    assert all(p["values"] for p in first["panels"]) and first["spectrum"]["values"]
    at.select_slider(key="lab_radius").set_value(1.0)
    run(at)
    second = {p["id"]: p for p in _data(at)["panels"]}
    assert second["original"]["values"] is None  # the browser has it: same window, same image
    assert second["perturbed"]["values"] and second["difference"]["values"]
    assert _data(at)["spectrum"]["values"] is None
