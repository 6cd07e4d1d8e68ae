"""The attributes of a derived DICOM series: the AI-enhanced cine as a new series.

- Identity: a new SeriesInstanceUID and SOPInstanceUID per run/file; the source's study and
  patient (``COPIED``) when the source is DICOM, else a new study. ImageType
  DERIVED\\SECONDARY; SeriesDescription and DerivationDescription say AI-enhanced and name
  the model (sha256, short), artifact, backend and profile; SourceImageSequence references
  the input instance; ContributingEquipmentSequence records ganrt as modifying equipment.
- SOP class: an ultrasound source stays Ultrasound Multi-frame Image (echo viewers play it
  as a cine); anything else becomes Multi-frame True Colour / Grayscale Byte / Grayscale
  Word Secondary Capture, by the output pixels.
- Pixels: uncompressed explicit VR little endian, RGB (planar configuration 0) for colour,
  MONOCHROME2 for gray; the frame rate as FrameTime, or FrameTimeVector when frames were
  dropped (live runs); FrameLabelVector says per frame ENHANCED, RAW or NO SIGNAL. A lossy
  source stays flagged lossy (LossyImageCompression 01 is never undone).
- De-identifying: ``deid.Deidentifier`` is applied to the copied attributes; generated dates
  and times are left out; PatientIdentityRemoved YES, DeidentificationMethod(+CodeSequence).

pydicom is imported inside the functions (ganrt[dicom]).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ... import __version__
from ..provenance import Provenance
from .deid import METHOD, METHOD_CODES, Deidentifier
from .deid_profile import DERIVED_TYPE2

FRAME_TIME = 0x00181063
FRAME_TIME_VECTOR = 0x00181065
FRAME_LABEL_VECTOR = 0x00182002

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_CLASSES = {US_MULTIFRAME, "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3",
              "1.2.840.10008.5.1.4.1.1.6"}  # multi-frame, single image, and their retired forms
SC_GRAY_BYTE = "1.2.840.10008.5.1.4.1.1.7.2"
SC_GRAY_WORD = "1.2.840.10008.5.1.4.1.1.7.3"
SC_TRUE_COLOR = "1.2.840.10008.5.1.4.1.1.7.4"

# What a derived series carries over from its source (every keyword needs an entry in deid.ACTIONS).
PATIENT = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex",
           "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
           "EthnicGroup", "PatientComments", "PatientAge", "PatientSize", "PatientWeight")
STUDY = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
         "StudyDescription", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy")
SITE = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName")
IMAGE = ("SpecificCharacterSet", "Laterality", "LossyImageCompression", "LossyImageCompressionRatio",
         "LossyImageCompressionMethod")
# Only while the frame size is the source's, or rescaled when it is an integer multiple of it.
GEOMETRY = ("PixelSpacing", "SequenceOfUltrasoundRegions")
COPIED = PATIENT + STUDY + SITE + IMAGE + GEOMETRY
TYPE2 = tuple(sorted(DERIVED_TYPE2))  # present even when empty

# (code value, scheme, meaning) for CID 7005 Contributing Equipment Purposes of Reference
MODIFYING = ("109103", "DCM", "Modifying Equipment")
DEIDENTIFYING = ("109104", "DCM", "De-identifying Equipment")
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")

LABELS = {"enhanced": "ENHANCED", "passthrough": "RAW"}
NO_SIGNAL_LABEL = "NO SIGNAL"


@dataclass(frozen=True)
class ImagePixel:
    """The Image Pixel module of the output frames (size, samples, bits). Not model/native.py's
    ``PixelFormat``, which names the memory layout (GRAY8, BGR8, YUYV...) of frames handed to the
    native pre-processing: one describes a DICOM file, the other a C buffer."""

    rows: int
    columns: int
    samples: int  # 1 gray, 3 RGB
    bits: int  # 8 or 16

    @property
    def photometric(self) -> str:
        return "RGB" if self.samples == 3 else "MONOCHROME2"

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples * self.bits // 8


def _code(ds_cls: Any, code: tuple[str, str, str]) -> Any:
    item = ds_cls()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _now() -> tuple[str, str]:
    t = datetime.now()
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S")


class DerivedSeries:
    """One output series; ``instance()`` gives the dataset (everything but PixelData) of each file."""

    def __init__(self, provenance: Provenance, *, source_header: Any = None, source_hw: tuple[int, int] | None = None,
                 modality: str = "US", fps: float = 30.0, overlay: bool = True,
                 deidentifier: Deidentifier | None = None) -> None:
        from pydicom.uid import generate_uid

        self.provenance = provenance.deidentified() if deidentifier else provenance
        self.src = source_header
        self.source_hw = source_hw
        self.fps = fps if fps and fps > 0 else 30.0
        self.overlay = overlay
        self.deid = deidentifier
        self.series_uid = generate_uid()
        self.study_uid = generate_uid()  # used when the source has no study
        src_modality = str(source_header.get("Modality", "")) if source_header is not None else ""
        self.modality = src_modality or modality or "OT"
        self.source_sop_class = str(source_header.get("SOPClassUID", "")) if source_header is not None else ""
        try:
            src_number = int(source_header.get("SeriesNumber")) if source_header is not None else 0
        except (TypeError, ValueError):
            src_number = 0
        self.series_number = 1000 + src_number  # derived series sort after their source
        self.created = _now()

    @property
    def burned_in_source(self) -> str:
        return str(self.src.get("BurnedInAnnotation", "")).upper() if self.src is not None else ""

    def sop_class(self, fmt: ImagePixel) -> str:
        if self.source_sop_class in US_CLASSES and fmt.bits == 8:
            return US_MULTIFRAME
        if fmt.samples == 3:
            return SC_TRUE_COLOR
        return SC_GRAY_BYTE if fmt.bits == 8 else SC_GRAY_WORD

    def _scale(self, fmt: ImagePixel) -> int:
        """s when the output frames are exactly s >= 2 times the source's in both directions (a
        super-resolution model), else 0 (the geometry does not carry over)."""
        if not self.source_hw or not all(self.source_hw):
            return 0
        rows, cols = self.source_hw
        s = fmt.rows // rows
        return s if s >= 2 and (fmt.rows, fmt.columns) == (rows * s, cols * s) else 0

    def _copied(self, fmt: ImagePixel) -> Any:
        from pydicom.dataset import Dataset

        ds = Dataset()
        if self.src is not None:
            same_size = self.source_hw == (fmt.rows, fmt.columns)
            scale = self._scale(fmt)
            for kw in COPIED:
                if kw not in self.src:
                    continue
                if kw in GEOMETRY and not same_size:
                    if scale:  # enlarged s times: s times the pixels, 1/s the spacing
                        _rescaled(ds, self.src, kw, scale)
                    continue
                ds[kw] = self.src[kw]  # DataElements are shared: deid below replaces, never edits in place
            ref = Dataset()
            ref.ReferencedSOPClassUID = self.src.get("SOPClassUID", "")
            ref.ReferencedSOPInstanceUID = self.src.get("SOPInstanceUID", "")
            ref.PurposeOfReferenceCodeSequence = [_code(Dataset, SOURCE_FOR_PROCESSING)]
            if ref.ReferencedSOPInstanceUID:
                ds.SourceImageSequence = [ref]
        else:
            ds.StudyInstanceUID = self.study_uid
            ds.StudyDate, ds.StudyTime = self.created
        for kw in TYPE2:
            if kw not in ds:
                setattr(ds, kw, "")
        if self.deid is not None:
            ds = _deep_copy(ds)
            self.deid.apply(ds)
            for kw in TYPE2:
                if kw not in ds:
                    setattr(ds, kw, "")
        return ds

    def description(self, counts: Counter, reasons: Counter, labels: Sequence[str]) -> str:
        """DerivationDescription (ST, 1024 characters): what made it, and which frames are raw."""
        raw = counts.get("passthrough", 0)
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()) if k) if raw else ""
        text = (f"AI-enhanced (GAN) by {self.provenance.summary()}; {counts.get('enhanced', 0)} of {len(labels)} "
                f"frames enhanced, {raw} shown raw" + (f" ({why})" if why else ""))
        numbers = [str(i + 1) for i, lab in enumerate(labels) if lab != LABELS["enhanced"]]
        if numbers:
            listed = f"; raw frame numbers: {','.join(numbers)}"
            text += listed if len(text) + len(listed) <= 1024 else "; raw frame numbers: see the run's record"
        return text[:1024]

    def series_description(self) -> str:
        return f"AI-enhanced (ganrt, model {self.provenance.model_short})"[:64]

    def instance(self, *, number: int, fmt: ImagePixel, frame_indices: Sequence[int], labels: Sequence[str],
                 counts: Counter, reasons: Counter) -> Any:
        """The dataset of one file (file meta included), without PixelData."""
        from pydicom.uid import generate_uid

        ds = self._copied(fmt)
        sop_class, sop_uid = self.sop_class(fmt), generate_uid()
        us = sop_class == US_MULTIFRAME
        date, time = _now() if self.deid is None else ("", "")
        # SOP Common
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        if self.deid is None:
            ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
        self._series_and_equipment(ds, us)
        # General Image
        ds.InstanceNumber = number
        ds.PatientOrientation = ""
        ds.ContentDate, ds.ContentTime = date, time
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.DerivationDescription = self.description(counts, reasons, labels)
        ds.BurnedInAnnotation = "YES" if self.overlay or self.burned_in_source != "NO" else "NO"
        if "LossyImageCompression" not in ds:
            ds.LossyImageCompression = "00"
        _image_pixel(ds, fmt, us)
        self._cine(ds, frame_indices, labels, us)
        self._sop_common(ds, date, time)
        ds.file_meta = _file_meta(sop_class, sop_uid)
        return ds

    def _series_and_equipment(self, ds: Any, us: bool) -> None:
        """General Series, and General (+ SC) Equipment: ganrt made this series."""
        ds.Modality = self.modality
        ds.SeriesInstanceUID = self.series_uid
        ds.SeriesNumber = self.series_number
        ds.SeriesDescription = self.series_description()
        if self.deid is None:
            ds.SeriesDate, ds.SeriesTime = self.created
        ds.Manufacturer = "ganrt"
        ds.ManufacturerModelName = "ganrt real-time enhancement"
        ds.SoftwareVersions = self._software_versions()
        if not us:  # SC Equipment
            ds.ConversionType = "WSD"
            ds.SecondaryCaptureDeviceManufacturer = "ganrt"
            ds.SecondaryCaptureDeviceManufacturerModelName = "ganrt real-time enhancement"
            ds.SecondaryCaptureDeviceSoftwareVersions = self._software_versions()

    def _cine(self, ds: Any, frame_indices: Sequence[int], labels: Sequence[str], us: bool) -> None:
        """Multi-frame + Cine: when each frame was (FrameTimeVector when frames were dropped), and
        the per-frame labels where the IOD has them."""
        ds.NumberOfFrames = len(frame_indices)
        period_ms = 1000.0 / self.fps
        steps = [b - a for a, b in zip(frame_indices, frame_indices[1:])]
        if steps and any(s != 1 for s in steps):  # frames were dropped: say when each one was
            ds.FrameIncrementPointer = FRAME_TIME_VECTOR
            ds.FrameTimeVector = [0.0] + [round(s * period_ms, 3) for s in steps]
        else:
            ds.FrameIncrementPointer = FRAME_TIME
            ds.FrameTime = round(period_ms, 3)
        ds.CineRate = ds.RecommendedDisplayFrameRate = max(1, int(round(self.fps)))
        if not us:  # SC Multi-frame Vector module; the US IOD has no per-frame labels
            ds.FrameIncrementPointer = [ds.FrameIncrementPointer, FRAME_LABEL_VECTOR]
            ds.FrameLabelVector = list(labels)

    def _sop_common(self, ds: Any, date: str, time: str) -> None:
        """SOP Common: provenance and de-identification."""
        from pydicom.dataset import Dataset

        ds.ContributingEquipmentSequence = self._contributors(date, time)
        if self.deid is not None:
            ds.PatientIdentityRemoved = "YES"
            ds.DeidentificationMethod = list(METHOD)
            ds.DeidentificationMethodCodeSequence = [_code(Dataset, c) for c in METHOD_CODES]
            ds.LongitudinalTemporalInformationModified = "REMOVED"

    def _software_versions(self) -> list[str]:
        p = self.provenance
        v = [p.runtime, f"model {p.model_short}"]
        if p.artifact:
            v.append(p.artifact[:64])
        return v

    def _contributors(self, date: str, time: str) -> list[Any]:
        from pydicom.dataset import Dataset

        p = self.provenance
        item = Dataset()
        item.Manufacturer = "ganrt"
        item.ManufacturerModelName = "ganrt real-time enhancement"
        item.SoftwareVersions = self._software_versions() + [f"backend {p.backend}"[:64], f"profile {p.profile}"[:64]]
        item.ContributionDescription = f"AI enhancement (GAN): {p.summary()}"[:1024]
        item.PurposeOfReferenceCodeSequence = [_code(Dataset, MODIFYING)]
        if date:
            item.ContributionDateTime = date + time
        items = [item]
        if self.deid is not None:
            d = Dataset()
            d.Manufacturer = "ganrt"
            d.SoftwareVersions = [p.runtime]
            d.ContributionDescription = "; ".join(METHOD)[:1024]
            d.PurposeOfReferenceCodeSequence = [_code(Dataset, DEIDENTIFYING)]
            items.append(d)
        return items


def _image_pixel(ds: Any, fmt: ImagePixel, us: bool) -> None:
    """Image Pixel: uncompressed RGB (planar configuration 0) or MONOCHROME2."""
    ds.SamplesPerPixel = fmt.samples
    ds.PhotometricInterpretation = fmt.photometric
    ds.Rows, ds.Columns = fmt.rows, fmt.columns
    ds.BitsAllocated = ds.BitsStored = fmt.bits
    ds.HighBit = fmt.bits - 1
    ds.PixelRepresentation = 0
    if fmt.samples == 3:
        ds.PlanarConfiguration = 0
    elif not us:  # SC Multi-frame grayscale: identity rescale and presentation
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
        ds.PresentationLUTShape = "IDENTITY"


def _file_meta(sop_class: str, sop_uid: str) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"GANRT_{__version__}"[:16]
    return meta


def _rescaled(ds: Any, src: Any, kw: str, s: int) -> None:
    """``src``'s geometry attribute ``kw`` into ``ds`` for frames enlarged ``s`` times (copies: the
    source's elements are never edited)."""
    from ...trust.us_regions import rescale_regions, rescale_spacing

    if kw == "PixelSpacing":
        ds.PixelSpacing = rescale_spacing(src.PixelSpacing, s)
    elif kw == "SequenceOfUltrasoundRegions":
        ds.SequenceOfUltrasoundRegions = rescale_regions(src.SequenceOfUltrasoundRegions, s)


def _deep_copy(ds: Any) -> Any:
    import copy

    return copy.deepcopy(ds)
