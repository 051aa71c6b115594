"""Manifest format and builders, each tested on small files in the source format written here."""

from __future__ import annotations

import csv
import os
import pickle

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from core.errors import ExplorerError
from core.manifest import (
    COLUMNS,
    ManifestError,
    Problem,
    load_plain_pickle,
    manifest_from_cbis_ddsm,
    manifest_from_dicom_folder,
    manifest_from_nyu_pickle,
    manifest_from_rsna,
    manifest_from_vindr,
    read_manifest,
    summarize_problems,
    vindr_labels,
    write_manifest,
)

VIEWS4 = [("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO")]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _manifest_rows(folder, exam="E1", labels=(0, 0)):
    rows = []
    for lat, view in VIEWS4:
        _touch(folder / "img" / f"{exam}-{lat}-{view}.dcm")
        rows.append({
            "image_id": f"{exam}-{lat}-{view}", "exam_id": exam, "patient_id": f"P{exam}",
            "laterality": lat, "view": view, "path": f"img/{exam}-{lat}-{view}.dcm",
            "spacing_row_mm": 0.1, "spacing_col_mm": 0.1,
            "label_benign": labels[0], "label_malignant": labels[1] if lat == "R" else 0, "split": "test",
        })  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------- format


def test_write_then_read_resolves_relative_paths_and_types(tmp_path):
    df = pd.DataFrame(_manifest_rows(tmp_path) + _manifest_rows(tmp_path, "E2", (1, 1)))
    df["path"] = [str(tmp_path / p) for p in df.path]  # absolute in, relative on disk
    out = write_manifest(df, tmp_path / "manifest.csv")
    text = out.read_text()
    assert str(tmp_path) not in text and "img/E1-L-CC.dcm" in text
    back = read_manifest(out)
    assert list(back.columns) == list(COLUMNS)
    assert back.attrs["problems"] == []
    assert back.path.iloc[0] == str(tmp_path / "img" / "E1-L-CC.dcm")
    assert back.label_malignant.dtype == np.int64 and back.spacing_row_mm.dtype == np.float64
    assert back.groupby("exam_id").label_malignant.sum().to_dict() == {"E1": 0, "E2": 2}


def test_bad_rows_are_reported_with_their_line_and_the_rest_loads(tmp_path):
    rows = _manifest_rows(tmp_path)
    rows.append({**rows[0], "image_id": "x1", "laterality": "B"})
    rows.append({**rows[0], "image_id": "x2", "view": "XCCL"})
    rows.append({**rows[0], "image_id": "x3", "label_malignant": "maybe"})
    rows.append({**rows[0]})  # duplicate image_id
    rows.append({**rows[0], "image_id": "x5", "path": "img/missing.dcm"})
    rows.append({**rows[0], "image_id": "x6", "spacing_row_mm": -1})
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    df = read_manifest(path)
    assert len(df) == 4
    problems = df.attrs["problems"]
    by_id = {p.image_id: p for p in problems}
    assert by_id["x1"].row == 6 and "unknown laterality 'B'" in by_id["x1"].message
    assert "unknown view 'XCCL'" in by_id["x2"].message
    assert "bad label" in by_id["x3"].message
    assert by_id["E1-L-CC"].row == 9 and "duplicate image_id" in by_id["E1-L-CC"].message
    assert "missing file" in by_id["x5"].message and "missing.dcm" in by_id["x5"].message
    assert "bad spacing" in by_id["x6"].message
    summary = summarize_problems(problems, source="m.csv")
    assert summary.startswith("m.csv: 6 problem(s)") and "row 6 [x1]" in summary
    with pytest.raises(ManifestError, match="unknown laterality"):
        read_manifest(path, strict=True)


def test_unknown_labels_and_missing_views(tmp_path):
    rows = _manifest_rows(tmp_path)[:3]
    for row in rows:
        row["label_benign"] = ""
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    df = read_manifest(path)
    assert str(df.label_benign.dtype) == "Int64" and df.label_benign.isna().all()
    assert df.label_malignant.dtype == np.int64
    [problem] = df.attrs["problems"]
    assert problem.image_id == "E1" and "lacks R-MLO" in problem.message


def test_unusable_manifests_raise_manifest_error_naming_the_file(tmp_path):
    assert issubclass(ManifestError, ExplorerError)
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "absent.csv")
    bad = tmp_path / "cols.csv"
    bad.write_text("image_id,path\na,b\n")
    with pytest.raises(ManifestError, match=r"cols\.csv: missing column\(s\) exam_id"):
        read_manifest(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="empty.csv"):
        read_manifest(empty)
    none_left = tmp_path / "none.csv"
    pd.DataFrame([{**_manifest_rows(tmp_path)[0], "view": "??"}]).to_csv(none_left, index=False)
    with pytest.raises(ManifestError, match="no valid image rows"):
        read_manifest(none_left)


# ------------------------------------------------------------------------------------- DICOM folder


def _dicom(
    path, *, patient="DOE^JANE", patient_id="MRN-12345", study=None, lat="L", view="CC", modality="MG"
):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient, patient_id, "19600101"
    ds.StudyInstanceUID = study
    ds.Modality = modality
    ds.ImageLaterality, ds.ViewPosition = lat, view
    ds.ImagerPixelSpacing = [0.07, 0.07]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = b"\x00\x01" * 3  # wrong length: decoding would fail, a header scan must not care
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_folder_groups_by_study_and_writes_only_pseudonyms(tmp_path):
    src = tmp_path / "dicoms"
    study1, study2 = "1.2.826.0.1.3680043.1111", "1.2.826.0.1.3680043.2222"
    for k, (lat, view) in enumerate(VIEWS4):
        _dicom(src / "a" / f"{k}.dcm", study=study1, lat=lat, view=view)
    for k, (lat, view) in enumerate(VIEWS4[:3]):
        _dicom(src / "b" / f"{k}.dcm", patient_id="MRN-999", study=study2, lat=lat, view=view)
    _dicom(src / "b" / "ml.dcm", patient_id="MRN-999", study=study2, lat="R", view="ML")
    _dicom(src / "b" / "ct.dcm", patient_id="MRN-999", study=study2, lat="R", view="CC", modality="CT")
    (src / "b" / "broken.dcm").write_bytes(b"not a dicom file at all")
    (src / "notes.txt").write_text("ignored")

    df, problems = manifest_from_dicom_folder(src)
    assert len(df) == 7 and df.exam_id.nunique() == 2 and df.patient_id.nunique() == 2
    assert (df.spacing_row_mm == 0.07).all() and df.label_malignant.isna().all()
    messages = " | ".join(str(p) for p in problems)
    assert "unknown view 'ML'" in messages and "Modality CT" in messages
    assert "unreadable DICOM header" in messages and "lacks R-MLO" in messages
    assert "notes.txt" not in messages
    out = write_manifest(df, tmp_path / "manifest.csv")
    text = out.read_text() + messages
    for secret in ("DOE", "JANE", "MRN-12345", "MRN-999", study1, study2, "19600101"):
        assert secret not in text
    again, _ = manifest_from_dicom_folder(src)
    assert again.image_id.tolist() == df.image_id.tolist()  # pseudonyms are stable
    salted, _ = manifest_from_dicom_folder(src, salt="site-secret")
    assert set(salted.patient_id).isdisjoint(df.patient_id)
    assert len(read_manifest(out)) == 7


# ------------------------------------------------------------------------------------- NYU pickle


def test_nyu_pickle_builds_four_views_with_labels_and_flip(tmp_path):
    for stem in ("0_L_CC", "0_R_CC", "0_L_MLO", "0_R_MLO", "1_L_CC", "1_R_CC", "1_L_MLO"):
        _touch(tmp_path / "images" / f"{stem}.png")
    exams = [
        {"horizontal_flip": "NO", "L-CC": ["0_L_CC"], "R-CC": ["0_R_CC"], "L-MLO": ["0_L_MLO"],
         "R-MLO": ["0_R_MLO"], "cancer_label": {"left_benign": 0, "right_benign": 1, "left_malignant": 0,
                                                "right_malignant": 1}},
        {"horizontal_flip": "YES", "L-CC": ["1_L_CC"], "R-CC": ["1_R_CC"], "L-MLO": ["1_L_MLO"],
         "R-MLO": ["1_R_MLO"]},
    ]  # fmt: skip
    path = tmp_path / "exam_list.pkl"
    path.write_bytes(pickle.dumps(exams))
    df, problems = manifest_from_nyu_pickle(path, tmp_path / "images", spacing_mm=(0.1, 0.1))
    assert len(df) == 7
    first = df[df.exam_id == "nyu-00000"].set_index("view", append=True)
    assert df.loc[df.exam_id == "nyu-00000", "label_malignant"].tolist() == [0, 1, 0, 1]
    assert first.horizontal_flip.unique().tolist() == ["NO"]
    assert df.loc[df.exam_id == "nyu-00001", "horizontal_flip"].unique().tolist() == ["YES"]
    assert df.loc[df.exam_id == "nyu-00001", "label_malignant"].isna().all()
    messages = [str(p) for p in problems]
    assert any("missing file" in m and "1_R_MLO.png" in m for m in messages)
    assert any("lacks R-MLO" in m for m in messages)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"L-CC": ["a"], "x": _Evil(sentinel)}]))
    with pytest.raises(ManifestError, match=r"evil\.pkl: unsafe or invalid pickle: refused to load .*system"):
        manifest_from_nyu_pickle(path, tmp_path)
    assert not sentinel.exists()
    arr = tmp_path / "numpy.pkl"
    arr.write_bytes(pickle.dumps([{"best_center": np.array([1, 2])}]))
    with pytest.raises(ManifestError, match="refused to load numpy"):
        load_plain_pickle(arr)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04not really")
    with pytest.raises(ManifestError, match="garbage.pkl"):
        load_plain_pickle(garbage)
    dict_top = tmp_path / "dict.pkl"
    dict_top.write_bytes(pickle.dumps({"L-CC": []}))
    with pytest.raises(ManifestError, match="expected a list of exam dicts"):
        manifest_from_nyu_pickle(dict_top)


# ------------------------------------------------------------------------------------- CBIS-DDSM

MASS_HEADER = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,"
    "mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path"
)
CALC_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,abnormality type,calc type,"
    "calc distribution,assessment,pathology,subtlety,image file path,cropped image file path,"
    "ROI mask file path"
)


def _cbis_row(set_name, patient, side, view, pathology, kind="mass", n=1):
    folder = f"{set_name}_{patient}_{side}_{view}"
    rel = f"{folder}/1.3.6.1.4.1.9590.100.1.2.{n}/1.3.6.1.4.1.9590.100.1.2.{n + 1}/000000.dcm"
    extra = "OVAL,CIRCUMSCRIBED" if kind == "mass" else "PLEOMORPHIC,CLUSTERED"
    return f"{patient},3,{side},{view},1,{kind},{extra},4,{pathology},3,{rel},crop.dcm,roi.dcm", rel


def test_cbis_ddsm_merges_mass_and_calc_files_per_image(tmp_path):
    mass_rows, calc_rows, rels = [], [], []
    for args in [
        ("Mass-Training", "P_00001", "LEFT", "CC", "MALIGNANT"),
        ("Mass-Training", "P_00001", "LEFT", "MLO", "MALIGNANT"),
        ("Mass-Training", "P_00004", "RIGHT", "CC", "BENIGN"),
        ("Mass-Training", "P_00004", "RIGHT", "MLO", "BENIGN_WITHOUT_CALLBACK"),
        ("Mass-Training", "P_00005", "RIGHT", "XX", "BENIGN"),
        ("Mass-Training", "P_00006", "LEFT", "CC", "UNPROVEN"),
    ]:
        row, rel = _cbis_row(*args)
        mass_rows.append(row)
        rels.append(rel)
    for args in [
        ("Calc-Test", "P_00004", "RIGHT", "CC", "MALIGNANT"),  # same breast as a benign mass: both labels
        ("Calc-Test", "P_00009", "LEFT", "MLO", "BENIGN"),  # its file is missing
    ]:
        row, rel = _cbis_row(*args, kind="calcification", n=7)
        calc_rows.append(row)
        rels.append(rel)
    (tmp_path / "mass_case_description_train_set.csv").write_text("\n".join([MASS_HEADER, *mass_rows]) + "\n")
    (tmp_path / "calc_case_description_test_set.csv").write_text("\n".join([CALC_HEADER, *calc_rows]) + "\n")
    for rel in rels[:4]:
        _touch(tmp_path / rel)
    # the calc image of P_00004 R CC: a TCIA download renamed the inner folders
    _touch(
        tmp_path / "Calc-Test_P_00004_RIGHT_CC" / "08-29-2017-DDSM-NA-12345" / "1.000000-full-33" / "1-1.dcm"
    )

    df, problems = manifest_from_cbis_ddsm(tmp_path)
    table = df.set_index("image_id")
    assert sorted(table.index) == ["P_00001-L-CC", "P_00001-L-MLO", "P_00004-R-CC", "P_00004-R-MLO"]
    assert table.loc["P_00001-L-CC", ["label_benign", "label_malignant"]].tolist() == [0, 1]
    # malignant calcs seen on the CC only: the breast's label applies to both views, reported as a conflict
    assert table.loc["P_00004-R-MLO", ["label_benign", "label_malignant"]].tolist() == [1, 1]
    assert table.loc["P_00004-R-CC", ["label_benign", "label_malignant"]].tolist() == [1, 1]
    assert table.split.to_dict() == {
        "P_00001-L-CC": "train", "P_00001-L-MLO": "train", "P_00004-R-CC": "test", "P_00004-R-MLO": "test"
    }  # fmt: skip
    messages = " | ".join(str(p) for p in problems)
    assert "unknown side/view 'RIGHT'/'XX'" in messages
    assert "unknown pathology 'UNPROVEN'" in messages
    assert "missing file" in messages and "Calc-Test_P_00009_LEFT_MLO" in messages
    assert "conflicting labels: label_malignant of breast R" in messages
    assert "lacks R-CC" in messages  # P_00001 has only its left breast
    assert "exam [P_00004]: case in both the train and the test files" in messages

    with pytest.raises(ManifestError, match="missing column"):
        bad = tmp_path / "other.csv"
        bad.write_text("a,b\n1,2\n")
        manifest_from_cbis_ddsm(bad)


# ------------------------------------------------------------------------------------- VinDr


def test_vindr_birads_rule():
    assert vindr_labels("BI-RADS 1") == (0, 0)
    assert vindr_labels("BI-RADS 2") == (1, 0) and vindr_labels("BI-RADS 3") == (1, 0)
    assert vindr_labels("BI-RADS 4") == (0, 1) and vindr_labels("BI-RADS 5") == (0, 1)
    assert vindr_labels("BI-RADS 0") is None and vindr_labels("") is None


def test_vindr_breast_level_csv(tmp_path):
    header = (
        "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,split"
    )
    rows = []
    for study, birads_l, birads_r, split in [("s1", "BI-RADS 1", "BI-RADS 4", "training"),
                                            ("s2", "BI-RADS 2", "BI-RADS 0", "test")]:  # fmt: skip
        for lat, view in VIEWS4:
            image = f"{study}{lat}{view}"
            birads = birads_l if lat == "L" else birads_r
            rows.append(f"{study},ser,{image},{lat},{view},3518,2800,{birads},DENSITY C,{split}")
            if image != "s2LMLO":
                _touch(tmp_path / "images" / study / f"{image}.dicom")
    rows.append("s3,ser,s3x,L,XCCL,3518,2800,BI-RADS 1,DENSITY C,test")
    csv = tmp_path / "breast-level_annotations.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    df, problems = manifest_from_vindr(csv)
    table = df.set_index("image_id")
    assert len(df) == 7
    assert table.loc["s1RCC", "label_malignant"] == 1 and table.loc["s1LCC", "label_malignant"] == 0
    assert table.loc["s2LCC", "label_benign"] == 1 and pd.isna(table.loc["s2RCC", "label_malignant"])
    assert table.loc["s1LCC", "split"] == "train" and table.loc["s2LCC", "split"] == "test"
    messages = " | ".join(str(p) for p in problems)
    assert "'BI-RADS 0' gives no label" in messages
    assert "missing file" in messages and "s2LMLO" in messages
    assert "XCCL" in messages and "row 10" in messages


# ------------------------------------------------------------------------------------- RSNA


def _rsna_csv(tmp_path):
    header = "site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,invasive,BIRADS,implant,density"
    rows = [
        "1,10006,462822612,L,CC,61,0,0,0,,0,",
        "1,10006,1459541791,L,MLO,61,0,0,0,,0,",
        "1,10006,1864590858,R,MLO,61,0,1,0,,0,",
        "1,10006,1874946579,R,CC,61,0,1,0,,0,",
        "1,10011,220375232,L,CC,55,1,1,1,0,0,",
        "1,10011,270344397,L,MLO,55,1,1,1,0,0,",
        "1,10011,541722628,R,CC,55,0,0,0,1,0,",
        "1,10011,1031443799,R,MLO,55,0,0,0,1,0,",
        "1,10011,99999,R,ML,55,0,0,0,1,0,",
        "2,10012,1,L,CC,50,x,0,0,1,0,",
    ]
    for row in rows:
        _, patient, image = row.split(",")[:3]
        if image != "1031443799":
            _touch(tmp_path / "train_images" / patient / f"{image}.dcm")
    csv = tmp_path / "train.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


def test_rsna_train_csv(tmp_path):
    df, problems = manifest_from_rsna(_rsna_csv(tmp_path))
    table = df.set_index("image_id")
    assert len(df) == 7
    assert table.loc["10011-220375232", ["label_benign", "label_malignant"]].tolist() == [0, 1]
    assert table.loc["10006-1864590858", ["label_benign", "label_malignant"]].tolist() == [1, 0]
    assert table.loc["10006-462822612", ["label_benign", "label_malignant"]].tolist() == [0, 0]
    assert set(df.exam_id) == {"10006", "10011"}
    messages = " | ".join(str(p) for p in problems)
    assert "'R'/'ML'" in messages and "row 10" in messages
    assert "bad label" in messages and "row 11" in messages
    assert "missing file" in messages and "1031443799" in messages
    assert "lacks R-MLO" in messages


def test_cli_builds_and_checks_a_manifest(tmp_path, capsys):
    from core.cli import main

    out = tmp_path / "m.csv"
    assert main(["manifest", "rsna", str(_rsna_csv(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "7 images, 2 exams" in printed and "problem(s)" in printed
    assert len(read_manifest(out)) == 7
    assert main(["manifest", "check", str(out)]) == 0
    assert "7 images" in capsys.readouterr().out
    assert main(["manifest", "vindr", str(tmp_path / "absent.csv"), "--out", str(out)]) == 2


def test_problem_str_and_summary():
    problems = [
        Problem(3, "a", "missing file: x (row dropped)"),
        Problem(-1, "E", "exam without all four views"),
    ]
    assert str(problems[0]) == "row 3 [a]: missing file: x (row dropped)"
    assert str(problems[1]) == "exam [E]: exam without all four views"
    text = summarize_problems(problems, max_lines=1)
    assert "2 problem(s)" in text and "1 x missing file" in text and "... and 1 more" in text
    assert summarize_problems([]) == "no problems"


def test_dicom_header_scan_never_decodes_pixels(tmp_path):
    path = _dicom(tmp_path / "d" / "a.dcm", study="1.2.3", lat="L", view="CC")
    with pytest.raises(Exception):  # noqa: B017 - the pixel data is deliberately broken
        _ = pydicom.dcmread(path).pixel_array
    df, _ = manifest_from_dicom_folder(tmp_path / "d")
    assert len(df) == 1


def test_write_refuses_line_breaks_in_cells(tmp_path):
    rows = _manifest_rows(tmp_path)
    rows[2]["image_id"] = "E1\rR-CC"
    with pytest.raises(ManifestError, match="row 3 holds a line break"):
        write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")
    assert not (tmp_path / "manifest.csv").exists()


def test_any_cell_content_loads_or_is_reported(tmp_path_factory):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("fuzz")
    base = _manifest_rows(folder)
    cell = st.one_of(
        st.text(max_size=8), st.sampled_from(["", "L", "R", "CC", "MLO", "1", "0", "nan", "0.1"])
    )

    @settings(max_examples=40, deadline=None)
    @given(column=st.sampled_from(COLUMNS), values=st.lists(cell, min_size=4, max_size=4))
    def check(column, values):
        rows = [dict(r, **{column: v}) for r, v in zip(base, values, strict=True)]
        path = folder / "m.csv"
        # quote every cell: a bare "\r" inside an unquoted cell is a line break to any CSV reader
        pd.DataFrame(rows).to_csv(path, index=False, quoting=csv.QUOTE_ALL)
        try:
            df = read_manifest(path)
        except ManifestError:
            return  # nothing usable left: a clear error naming the file
        dropped = {p.row for p in df.attrs["problems"] if p.row >= 0}
        assert len(df) + len(dropped) == len(rows)

    check()
