"""De-identification against the PS3.15 basic profile's table, element by element, at every level."""

from __future__ import annotations

import copy
import re

import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.datadict import tag_for_keyword  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402

from ganrt.runtime.frames import FrameResult, Outcome  # noqa: E402
from ganrt.runtime.sinks.dicom.deid import Deidentifier  # noqa: E402
from ganrt.runtime.sinks.dicom.deid_profile import BASIC_PROFILE, DERIVED_TYPE2, RETAINED, Action, tag_actions  # noqa: E402
from ganrt.runtime.sinks.dicom.sink import DicomSink  # noqa: E402
from ganrt.runtime.sinks.provenance import Provenance  # noqa: E402
from ganrt.runtime.sources import open_source  # noqa: E402

ECHO = pydicom.data.get_testdata_file("examples_ybr_color.dcm")
PRIVATE = (0x00091010, "LO", "private-Doe")
TOP_PHI = {
    "PatientName": "Doe^Janet", "PatientID": "MRN-0042", "PatientBirthDate": "19700131", "PatientSex": "F",
    "OtherPatientIDs": "OTHER-1", "OtherPatientNames": "Roe^Janet", "PatientAddress": "12 Elm Street",
    "InstitutionName": "Saint Example", "InstitutionAddress": "1 Hospital Road",
    "InstitutionalDepartmentName": "Cardiology West", "OperatorsName": "Sono^Grapher",
    "PerformingPhysicianName": "Perf^Ormer", "NameOfPhysiciansReadingStudy": "Read^Er",
    "ReferringPhysicianName": "House^Gregory", "StationName": "ECHO-CART-7", "DeviceSerialNumber": "SN-123456",
    "SeriesDate": "20240301", "SeriesTime": "101500", "AcquisitionDate": "20240301", "AcquisitionTime": "101501",
    "AcquisitionDateTime": "20240301101501", "StudyDate": "20240301", "StudyTime": "101000",
    "AccessionNumber": "ACC-98765", "StudyID": "S-77", "StudyDescription": "Echo Doe",
    "SeriesDescription": "Doe echo", "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.111",
    "ImageComments": "patient Doe anxious", "ProtocolName": "Doe protocol",
}
NESTED_PHI = {"PatientName": "Nested^Doe", "OperatorsName": "Nested^Operator"}


def _phi_dataset() -> Dataset:
    ds = pydicom.dcmread(ECHO)
    for kw, v in TOP_PHI.items():
        setattr(ds, kw, v)
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = "OTHER-777", "Other Hospital"
    ds.OtherPatientIDsSequence = [other]
    ds.add_new(*PRIVATE)
    region = ds.SequenceOfUltrasoundRegions[0]
    for kw, v in NESTED_PHI.items():
        setattr(region, kw, v)
    region.add_new(0x00111010, "LO", "private-nested-Doe")
    return ds


def _walk(ds: Dataset, path: tuple = ()):
    for elem in ds:
        yield path, elem
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _walk(item, path + ((elem.tag, i),))


def _find(ds: Dataset, path: tuple):
    for tag, i in path:
        if tag not in ds or len(ds[tag].value) <= i:
            return None
        ds = ds[tag].value[i]
    return ds


UID = re.compile(r"2\.25\.\d{1,39}")


def test_every_keyword_of_the_table_is_a_dicom_attribute():
    assert all(tag_for_keyword(kw) is not None for kw in (*BASIC_PROFILE, *RETAINED))


def test_every_element_of_a_phi_laden_dataset_follows_the_table():
    src = _phi_dataset()
    out = copy.deepcopy(src)
    Deidentifier(b"key").apply(out)
    table = tag_actions(DERIVED_TYPE2)
    checked = 0
    for path, elem in _walk(src):
        parent = _find(out, path)
        got = parent[elem.tag] if parent is not None and elem.tag in parent else None
        action = Action.REMOVE if elem.tag.is_private else table.get(elem.tag)
        if action is None:
            action = Action.REMOVE if not path else Action.KEEP  # top level: only what the table names
        where = f"{elem.keyword or elem.tag} at depth {len(path)}"
        if elem.tag == 0x7FE00010:
            continue  # pixel data is not part of the header de-identification
        if action is Action.REMOVE or parent is None:
            assert got is None, where
        elif action is Action.EMPTY:
            assert got is not None and got.value in ("", [], None), where
        elif action is Action.DUMMY:
            assert got is not None and got.value and got.value != elem.value, where
        elif action is Action.UID:
            assert got is not None and UID.fullmatch(str(got.value)) and got.value != elem.value, where
        elif elem.VR == "UI" and path and not elem.keyword.endswith("ClassUID"):
            assert got.value != elem.value, where
        elif elem.VR != "SQ":
            assert got is not None and got.value == elem.value, where
        checked += 1
    assert checked > 40
    region = out.SequenceOfUltrasoundRegions[0]
    assert region.PatientName == "ANONYMOUS^PATIENT" and "OperatorsName" not in region
    assert 0x00111010 not in region and region.RegionSpatialFormat == src.SequenceOfUltrasoundRegions[0].RegionSpatialFormat
    for kw in ("OtherPatientIDs", "OtherPatientIDsSequence", "InstitutionName", "InstitutionAddress",
               "InstitutionalDepartmentName", "OperatorsName", "PerformingPhysicianName",
               "NameOfPhysiciansReadingStudy", "StationName", "DeviceSerialNumber", "SeriesDate", "SeriesTime",
               "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime"):
        assert kw not in out, kw
    assert UID.fullmatch(out.FrameOfReferenceUID)


def test_deidentified_series_file_has_no_phi_at_any_level(tmp_path):
    src_path = tmp_path / "Doe.dcm"
    _phi_dataset().save_as(src_path)
    src = open_source(str(src_path))
    sink = DicomSink(tmp_path / "out.dcm", provenance=Provenance("abc"), fps=src.fps, overlay=False,
                     source_header=src.dicom_header, source_path=src.path, source_hw=src.frame_hw, deidentify=True)
    for _ in range(2):
        f = src.read()
        sink.write(f, FrameResult(f.index, Outcome.ENHANCED, pixels=f.pixels))
    sink.close()
    src.close()
    raw = (tmp_path / "out.dcm").read_bytes()
    for value in [v for v in (*TOP_PHI.values(), *NESTED_PHI.values(), "OTHER-777", "private-Doe") if len(v) > 4]:
        assert value.encode() not in raw, value
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert all(not e.tag.is_private for _, e in _walk(out))
    assert out.SequenceOfUltrasoundRegions[0].PatientName == "ANONYMOUS^PATIENT"
