"""AppTest of the image lab's "Model's eye" controls: off by default, the model's Nyquist frequency next to
the radius slider, and weights files that cannot be used refused with a message (never a traceback)."""

from __future__ import annotations

import shutil

import pytest

from tests.app_support import REPO, errors, open_page, run, tiny_cohort_env


@pytest.fixture(scope="module", autouse=True)
def tiny_cohort(tmp_path_factory):
    yield from tiny_cohort_env(tmp_path_factory.mktemp("eye-data"))


def _texts(at) -> str:
    return "\n".join([c.value for c in at.caption] + [w.value for w in at.warning])


def test_off_by_default_with_the_models_resolution_next_to_the_slider():
    at = run(open_page("Image lab"))
    assert at.toggle(key="eye_on").value is False
    assert not [r for r in at.radio if r.key == "eye_weights"]  # nothing of the eye is drawn or computed
    text = _texts(at)
    # the demo weights read the study's 0.1 mm pixels: R = 2 removes a band they see
    assert "GMIC (demo weights) sees 0.1 mm pixels: its Nyquist frequency is **5 cycles/mm**" in text
    assert "cannot see" not in text
    # the fast ones read 0.3 mm: the same filter removes only what they cannot see
    at = run(open_page("Image lab", {"eye_weights_v": "demo-fast"}))
    text = _texts(at)
    assert "GMIC (demo-fast weights) sees 0.3 mm pixels: its Nyquist frequency is **1.67 cycles/mm**" in text
    assert "R = 2 cycles/mm is above the model's Nyquist frequency (1.67 cycles/mm)" in text
    assert "the model cannot see what this filter removes" in text
    at.select_slider(key="lab_radius").set_value(1.0)
    run(at)
    assert "cannot see" not in _texts(at) and "1.67 cycles/mm" in _texts(at)
    at.radio(key="lab_pert").set_value("highpass")
    at.select_slider(key="lab_radius").set_value(4.0)
    run(at)
    assert "everything this filter keeps is finer than the model can see" in _texts(at)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda data: "/etc/hostname", "outside the folders this app may read"),
        (lambda data: str(data / "nothing-here.pt"), "no such file inside the allowed folders"),
        (
            lambda data: str(shutil.copy(REPO / "assets" / "weights" / "dmv-demo-fast.pt", data / "dmv.pt")),
            "these are dmv weights, not gmic",
        ),
        (lambda data: _garbage(data / "broken.p"), "broken.p"),
    ],
)
def test_weights_that_cannot_be_used_give_a_message(tiny_cohort, make, message):
    data = tiny_cohort.parent.parent.parent  # <data>/cohorts/tiny-0/manifest.csv
    path = make(data)
    at = run(open_page("Image lab", {"eye_weights_v": "file", "eye_path_v": path}))
    at.toggle(key="eye_on").set_value(True)
    run(at)
    assert at.radio(key="eye_weights").value == "file" and at.text_input(key="eye_path").value == path
    found = errors(at)
    assert any(message in e for e in found), found
    assert not at.get("stMetric") and not any("Malignant" in m.label for m in at.metric)
    # the note next to the slider cannot read these weights either, and says so
    assert "choose usable GMIC weights" in _texts(at) or "unknown" in _texts(at)


def _garbage(path):
    path.write_bytes(b"\x80\x04not a checkpoint at all")
    return str(path)
