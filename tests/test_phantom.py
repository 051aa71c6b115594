"""The synthetic screening cohort: files, headers, geometry, findings, determinism, atomic generation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from core.imaging.write import MG_FOR_PRESENTATION as MAMMO_FOR_PRESENTATION
from core.manifest import read_manifest
from core.phantom import (
    GENERATOR_VERSION,
    PRESETS,
    PhantomError,
    ensure_cohort,
    generate_cohort,
    render_view,
    sample_exams,
)
from core.phantom.cohort import VIEW_ORDER


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_cohort("tiny", tmp_path_factory.mktemp("cohort") / "tiny-0", seed=0)


@pytest.fixture(scope="module")
def tiny_df(tiny) -> pd.DataFrame:
    return read_manifest(tiny)


@pytest.fixture(scope="module")
def findings(tiny) -> pd.DataFrame:
    return pd.read_csv(tiny.parent / "findings.csv", keep_default_na=False)


def _pixels(path: str) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


def test_tiny_manifest_has_four_views_per_exam_and_no_problems(tiny_df):
    preset = PRESETS["tiny"]
    assert len(tiny_df) == 4 * preset.n_exams
    assert tiny_df.attrs["problems"] == []
    for _, exam in tiny_df.groupby("exam_id"):
        assert sorted(zip(exam.laterality, exam.view, strict=True)) == sorted(VIEW_ORDER)
        assert exam.patient_id.nunique() == 1 and exam.split.nunique() == 1
    assert set(tiny_df.split) <= {"train", "val", "test"}
    assert (tiny_df.spacing_row_mm == 0.1).all() and (tiny_df.spacing_col_mm == 0.1).all()
    assert tiny_df.label_malignant.sum() > 0 and tiny_df.label_benign.sum() > 0


def test_dicom_headers_are_for_presentation_mammograms_with_synthetic_ids(tiny_df):
    study_uids = {}
    for row in tiny_df.itertuples():
        ds = pydicom.dcmread(row.path)
        assert ds.SOPClassUID == MAMMO_FOR_PRESENTATION
        assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert [float(v) for v in ds.ImagerPixelSpacing] == [0.1, 0.1]
        assert ds.ImageLaterality == row.laterality and ds.ViewPosition == row.view
        assert str(ds.PatientName).startswith("SYNTHETIC^") and ds.PatientID == row.patient_id
        assert ds.PatientBirthDate == ""
        study_uids.setdefault(row.exam_id, set()).add(ds.StudyInstanceUID)
    assert all(len(v) == 1 for v in study_uids.values())
    assert len({next(iter(v)) for v in study_uids.values()}) == len(study_uids)


def test_views_face_the_right_way_with_zero_background_and_12_bit_values(tiny_df):
    for row in tiny_df.itertuples():
        px = _pixels(row.path)
        assert px.dtype == np.uint16 and px.max() <= 4095
        breast = px > 0
        assert 0.2 < breast.mean() < 0.95
        cols = np.flatnonzero(breast.any(axis=0))
        chest, far = (0, px.shape[1] - 1) if row.laterality == "L" else (px.shape[1] - 1, 0)
        assert breast[:, chest].any(), f"{row.image_id}: chest wall should touch column {chest}"
        assert not breast[:, far].any(), f"{row.image_id}: nipple side should not touch column {far}"
        assert cols.size > 0
        if row.view == "MLO":
            # the pectoral muscle: the brightest tissue hugs the chest wall at the top
            top = px[: px.shape[0] // 8]
            near = top[:, :40] if row.laterality == "L" else top[:, -40:]
            assert np.median(near[near > 0]) > np.median(px[breast])


def test_findings_show_in_both_views_of_their_breast_at_consistent_depth(tiny_df, findings):
    labelled = tiny_df.set_index("image_id")
    groups = findings[findings.part_of == ""]
    assert set(groups.kind) >= {"calc_cluster"}
    for fid, g in groups.groupby("finding_id"):
        assert sorted(g.view) == ["CC", "MLO"], fid
        lat = g.laterality.iloc[0]
        depths = []
        for rec in g.itertuples():
            px = _pixels(labelled.loc[rec.image_id, "path"])
            r, c = int(round(rec.row)), int(round(rec.col))
            assert px[r, c] > 0, f"{fid} lies outside the breast in {rec.image_id}"
            label = labelled.loc[rec.image_id, f"label_{rec.pathology}"]
            assert label == 1, f"{rec.image_id} has a {rec.pathology} finding but label 0"
            chest = 0 if lat == "L" else px.shape[1] - 1
            depths.append(abs(rec.col - chest) / (px[r] > 0).sum())
        # the same fraction of the way from chest wall to skin in both views (pectoral may push MLO out)
        assert abs(depths[0] - depths[1]) < 0.3, (fid, depths)


def test_malignant_labels_match_findings(tiny_df, findings):
    malignant = set(findings.loc[findings.pathology == "malignant", "image_id"])
    benign = set(findings.loc[findings.pathology == "benign", "image_id"])
    for row in tiny_df.itertuples():
        assert row.label_malignant == int(row.image_id in malignant)
        assert row.label_benign == int(row.image_id in benign)


def test_calc_clusters_have_5_to_20_fine_calcs_within_about_one_square_cm(findings):
    calcs = findings[findings.kind == "microcalc"]
    assert len(calcs) > 0
    assert calcs.diameter_mm.between(0.1, 0.5).all()
    for _, g in calcs.groupby(["finding_id", "view"]):
        assert 3 <= len(g) <= 20  # 5..20 drawn; a few may fall outside the breast edge
        spread_mm = 0.1 * np.hypot(g.row - g.row.mean(), g.col - g.col.mean())
        assert np.percentile(spread_mm, 90) < 7.0
    coarse = findings[findings.kind == "coarse_calc"]
    assert (coarse.diameter_mm > 1.0).all()


def test_calcs_are_visible_and_fade_under_lowpass(tiny_df, findings):
    from core.calcs import visibility
    from core.perturb import FourierFilter

    calcs = findings[findings.kind == "microcalc"]
    paths = tiny_df.set_index("image_id").path
    ratios = {1.0: [], 4.0: []}
    native = []
    for image_id, g in calcs.groupby("image_id"):
        px = _pixels(paths[image_id]).astype(np.float32)
        filt = FourierFilter(px, (0.1, 0.1))
        low = {radius: filt.lowpass(radius) for radius in ratios}
        for rec in g.itertuples():
            v0 = visibility(px, (rec.row, rec.col), rec.diameter_mm, (0.1, 0.1))
            native.append(v0)
            for radius in ratios:
                ratios[radius].append(
                    visibility(low[radius], (rec.row, rec.col), rec.diameter_mm, (0.1, 0.1)) / v0
                )
    assert np.median(native) > 3.0
    r1, r4 = np.array(ratios[1.0]), np.array(ratios[4.0])
    assert np.median(r1) < 0.5 and np.mean(r1 < 0.5) > 0.75
    assert np.median(r4) > 0.75 and np.mean(r4 > 0.5) > 0.9


def test_calc_clusters_still_stand_out_at_training_resolution(tiny_df, findings):
    """At 0.4 mm (4x4 block means) a cluster's specks still rise above the local tissue more than anything
    else nearby does (residual after a 2.8 mm median filter)."""
    from scipy.ndimage import median_filter

    clusters = findings[findings.kind == "calc_cluster"]
    paths = tiny_df.set_index("image_id").path
    for rec in clusters.itertuples():
        px = _pixels(paths[rec.image_id]).astype(np.float32)
        h, w = (px.shape[0] // 4) * 4, (px.shape[1] // 4) * 4
        small = px[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
        residual = small - median_filter(small, size=7)
        r, c = rec.row / 4, rec.col / 4
        rr, cc = np.mgrid[: small.shape[0], : small.shape[1]]
        dist_mm = 0.4 * np.hypot(rr - r, cc - c)
        inner = residual[dist_mm < 6]
        ring = residual[(dist_mm > 8) & (dist_mm < 20) & (small > 0)]
        assert np.sort(inner)[-3:].mean() > 2 * np.percentile(ring, 99.5), rec.finding_id


def test_texture_power_law_beta_is_near_3():
    from core.spectrum import power_law_beta

    preset = PRESETS["demo"]
    spec = sample_exams(preset, seed=3)[0]
    stored, _ = render_view(spec, "L", "CC", preset)
    beta = power_law_beta(stored.astype(np.float32), (0.1, 0.1))
    assert 2.5 < beta < 3.5


def test_same_seed_same_bytes_other_seed_other_images(tiny, tmp_path):
    again = generate_cohort("tiny", tmp_path / "again", seed=0)

    def digest(folder: Path) -> dict[str, str]:
        return {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    assert digest(tiny.parent) == digest(again.parent)
    preset = PRESETS["tiny"]
    a, _ = render_view(sample_exams(preset, 0)[0], "L", "CC", preset)
    b, _ = render_view(sample_exams(preset, 1)[0], "L", "CC", preset)
    assert not np.array_equal(a, b)


def test_demo_preset_is_large_realistic_and_split_by_patient():
    preset = PRESETS["demo"]
    assert preset.n_exams >= 300 and 0.07 <= preset.spacing_mm <= 0.1
    specs = sample_exams(preset, seed=0)
    assert len({s.patient_id for s in specs}) == len(specs)
    splits = pd.Series([s.split for s in specs])
    frac = splits.value_counts(normalize=True)
    assert (
        abs(frac["train"] - 0.7) < 0.02 and abs(frac["val"] - 0.15) < 0.02 and abs(frac["test"] - 0.15) < 0.02
    )
    malignant = pd.Series(
        [any(f.pathology == "malignant" for fs in s.findings.values() for f in fs) for s in specs]
    )
    assert abs(malignant.mean() - preset.malignant_prevalence) < 0.01
    for split in ("train", "val", "test"):
        assert malignant[splits == split].sum() >= 10


def test_ensure_cohort_generates_once_into_the_data_dir(data_dir):
    leftover = data_dir / "cohorts" / ".tiny-0.partial-killed"  # from a run killed before its cleanup
    (leftover / "images").mkdir(parents=True)
    manifest = ensure_cohort("tiny", seed=0)
    assert not leftover.exists()
    assert manifest == data_dir / "cohorts" / "tiny-0" / "manifest.csv"
    stamp = manifest.stat().st_mtime_ns
    assert ensure_cohort("tiny", seed=0) == manifest
    assert manifest.stat().st_mtime_ns == stamp
    info = json.loads((manifest.parent / "cohort.json").read_text())
    assert info["seed"] == 0 and info["n_images"] == 4 * PRESETS["tiny"].n_exams
    assert [p.name for p in (data_dir / "cohorts").iterdir() if "partial" in p.name] == []
    # a cohort cached by another generator version is regenerated
    info["generator_version"] = -1
    (manifest.parent / "cohort.json").write_text(json.dumps(info))
    assert ensure_cohort("tiny", seed=0) == manifest
    assert json.loads((manifest.parent / "cohort.json").read_text())["generator_version"] == GENERATOR_VERSION
    assert sorted(p.name for p in (data_dir / "cohorts").iterdir() if not p.name.startswith(".")) == [
        "tiny-0"
    ]


def test_negative_tissue_values_stay_inside_the_breast(monkeypatch):
    """Texture tails below -53 once made the quantum-noise variance negative: NaN pixels, stored as 0 holes
    in the breast (seen in 1 of 1200 images of the demo cohort with seed 2). They are now floored to 1."""
    import warnings

    import core.phantom.cohort as cohort

    real = cohort.render_anatomy
    seen = {}

    def with_a_dark_spot(geom, shape, rng):
        pixels, mask = real(geom, shape, rng)
        rows, cols = np.nonzero(mask)
        r, c = int(np.median(rows)), int(np.median(cols))
        pixels[r - 2 : r + 3, c - 2 : c + 3] = -400.0
        seen.update(mask=mask, spot=(slice(r - 2, r + 3), slice(c - 2, c + 3)))
        return pixels, mask

    monkeypatch.setattr(cohort, "render_anatomy", with_a_dark_spot)
    preset = PRESETS["tiny"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stored, _ = render_view(sample_exams(preset, 0)[0], "L", "CC", preset)
    assert stored[seen["mask"]].min() >= 1 and stored[~seen["mask"]].max() == 0
    assert stored[seen["spot"]].min() >= 1 and stored[seen["spot"]].mean() < 60


def test_interrupted_generation_leaves_no_cohort(tmp_path, monkeypatch):
    import core.phantom.cohort as cohort

    calls = {"n": 0}
    real = cohort.render_view

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 6:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(cohort, "render_view", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_cohort("tiny", tmp_path / "cohort", seed=0, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_bad_preset_and_occupied_folder_are_refused(tiny, tmp_path):
    with pytest.raises(PhantomError, match="unknown cohort preset 'huge'"):
        generate_cohort("huge", tmp_path / "x")
    with pytest.raises(PhantomError, match="already holds a cohort"):
        generate_cohort("tiny", tiny.parent)


def test_cli_writes_a_cohort(tmp_path, capsys):
    from core.cli import main

    assert main(["phantom", "--preset", "tiny", "--out", str(tmp_path / "c"), "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "manifest.csv" in out
    assert len(read_manifest(tmp_path / "c" / "manifest.csv")) == 4 * PRESETS["tiny"].n_exams
    assert main(["phantom", "--preset", "nope", "--out", str(tmp_path / "d")]) == 2


def test_tiny_has_every_split_with_a_malignant_exam(tiny_df):
    for split in ("train", "val", "test"):
        part = tiny_df[tiny_df.split == split]
        assert part.exam_id.nunique() >= 1 and part.label_malignant.sum() >= 1, split


def test_views_load_through_core_imaging_with_their_spacing_side_and_view(tiny_df):
    from core.imaging import load_mammogram

    for row in tiny_df.iloc[[0, 3]].itertuples():
        mammogram = load_mammogram(row.path)
        assert mammogram.spacing_mm == (0.1, 0.1) and not mammogram.spacing_assumed
        assert "ImagerPixelSpacing" in mammogram.spacing_source
        assert (mammogram.laterality, mammogram.view) == (row.laterality, row.view)
        assert np.array_equal(mammogram.pixels, _pixels(row.path).astype(np.float32))


def test_dicom_folder_builder_recovers_the_cohort_structure(tiny, tiny_df):
    from core.manifest import manifest_from_dicom_folder

    df, problems = manifest_from_dicom_folder(tiny.parent / "images")
    assert problems == []
    assert len(df) == len(tiny_df) and df.exam_id.nunique() == tiny_df.exam_id.nunique()
    assert (df.spacing_row_mm == 0.1).all()
    by_path = df.set_index("path")
    for row in tiny_df.itertuples():
        assert (by_path.loc[row.path, "laterality"], by_path.loc[row.path, "view"]) == (
            row.laterality,
            row.view,
        )
    # exams are grouped exactly as the cohort's
    groups = {frozenset(g.path) for _, g in df.groupby("exam_id")}
    assert groups == {frozenset(g.path) for _, g in tiny_df.groupby("exam_id")}


def test_anatomy_is_drawn_in_mm_so_another_spacing_gives_the_same_breast():
    from core.phantom import CohortPreset

    sizes = []
    for spacing, shape in ((0.1, (800, 520)), (0.07, (1143, 743))):
        preset = CohortPreset(f"s{spacing}", 2, shape, spacing_mm=spacing, breast_scale=0.5)
        stored, _ = render_view(sample_exams(preset, 0)[0], "L", "CC", preset)
        breast = stored > 0
        rows = np.flatnonzero(breast.any(axis=1))
        sizes.append(((rows[-1] - rows[0]) * spacing, np.flatnonzero(breast.any(axis=0))[-1] * spacing,
                      breast.sum() * spacing**2))  # fmt: skip
    (h1, d1, a1), (h2, d2, a2) = sizes
    assert abs(h1 - h2) < 0.3 and abs(d1 - d2) < 0.3 and abs(a1 - a2) / a1 < 0.01


def test_pixel_data_is_rle_compressed_and_identical_to_the_rendering(tiny_df):
    """Issue 19: the cohort is stored RLE Lossless; the decoded values are exactly the rendered ones."""
    from pydicom.uid import RLELossless

    from core.imaging import load_mammogram

    preset = PRESETS["tiny"]
    specs = {s.exam_id: s for s in sample_exams(preset, 0)}
    for row in tiny_df.itertuples():
        ds = pydicom.dcmread(row.path)
        assert ds.file_meta.TransferSyntaxUID == RLELossless
        rendered, _ = render_view(specs[row.exam_id], row.laterality, row.view, preset)
        assert np.array_equal(ds.pixel_array, rendered), row.image_id
        # the project's loader (decoding in its sandboxed decode process) reads the same values
        assert np.array_equal(load_mammogram(row.path).pixels, rendered.astype(np.float32))


def test_compression_options_store_the_same_pixels_in_fewer_bytes(tiny, tmp_path):
    from core.phantom.dicom import write_view

    plain = generate_cohort("tiny", tmp_path / "plain", seed=0, compression="none")
    assert json.loads((plain.parent / "cohort.json").read_text())["compression"] == "none"
    sizes = {"rle": 0, "none": 0}
    for rle_file in sorted((tiny.parent / "images").rglob("*.dcm")):
        plain_file = plain.parent / rle_file.relative_to(tiny.parent)
        assert np.array_equal(_pixels(str(rle_file)), _pixels(str(plain_file)))
        sizes["rle"] += rle_file.stat().st_size
        sizes["none"] += plain_file.stat().st_size
    assert sizes["rle"] < sizes["none"] / 2
    preset = PRESETS["tiny"]
    stored, _ = render_view(sample_exams(preset, 0)[0], "L", "CC", preset)
    path = tmp_path / "j2k.dcm"
    write_view(
        path, stored, spacing_mm=0.1, laterality="L", view="CC", exam_id="E", patient_id="P",
        image_id="I", instance_number=1, cohort_key="k", compression="jpeg2000",
    )  # fmt: skip
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert np.array_equal(_pixels(str(path)), stored)
    with pytest.raises(PhantomError, match="unknown compression 'zip'"):
        generate_cohort("tiny", tmp_path / "zip", compression="zip")


def test_ensure_cohort_reports_progress_while_generating(data_dir):
    from core.phantom import cohort_ready

    assert not cohort_ready("tiny")
    calls = []
    ensure_cohort("tiny", progress=lambda done, total: calls.append((done, total)))
    n = PRESETS["tiny"].n_exams
    assert calls == [(k, n) for k in range(1, n + 1)]
    assert cohort_ready("tiny")
    ensure_cohort("tiny", progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == n  # on disk already: nothing generated, nothing reported


def test_cli_progress_line(tmp_path, capsys):
    import io

    from core.cli import main
    from core.cli.phantom import progress_line

    stream = io.StringIO()  # not a terminal: one line per 5 % step
    report = progress_line(stream, start=0.0)
    for done in range(1, 301):
        report(done, 300)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 21 and lines[-1].startswith("generating: 300/300 exams (100 %)")
    assert "about" in lines[0] and "left" in lines[0]
    assert main(["phantom", "--preset", "tiny", "--out", str(tmp_path / "c")]) == 0
    assert "generating: 6/6 exams (100 %)" in capsys.readouterr().err
