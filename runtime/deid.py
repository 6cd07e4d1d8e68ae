"""De-identification of the attributes a derived DICOM series copies from its source.

DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile (table E.1-1), for
every attribute ``dicom_out.COPIED`` may carry over (a test keeps the two lists in step):
D = replace with a dummy / pseudonym, Z = empty, X = remove, K = keep (a sequence whole),
U = replace the UID with one derived from it by a keyed hash (the same input UID always gives
the same output UID under the same key, so several series of one study stay one de-identified
study), U* = keep a reference sequence but replace every instance UID inside it. Anything
not in the table (private attributes included) is removed.

The key is ``GANRT_DEID_SALT`` from the environment when set (use one secret per project to
keep pseudonyms consistent across runs), else random per run. Attributes ganrt generates
carry no identity; their dates are left out by ``dicom_out`` when de-identifying. Pixel
data is not cleaned: ultrasound frames often have the patient's name burned in, which the
sink warns about (no Clean Pixel Data Option).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from enum import Enum
from typing import Any

from . import __version__

SALT_ENV = "GANRT_DEID_SALT"


class Action(Enum):
    DUMMY = "D"
    EMPTY = "Z"
    REMOVE = "X"
    KEEP = "K"
    UID = "U"
    UID_ITEMS = "U*"


A = Action
ACTIONS: dict[str, Action] = {
    # Patient, Patient Study
    "PatientName": A.DUMMY, "PatientID": A.DUMMY, "IssuerOfPatientID": A.REMOVE, "PatientBirthDate": A.EMPTY,
    "PatientBirthTime": A.REMOVE, "PatientSex": A.EMPTY, "OtherPatientIDs": A.REMOVE,
    "OtherPatientIDsSequence": A.REMOVE, "OtherPatientNames": A.REMOVE, "PatientAddress": A.REMOVE,
    "PatientTelephoneNumbers": A.REMOVE, "PatientMotherBirthName": A.REMOVE, "EthnicGroup": A.REMOVE,
    "PatientComments": A.REMOVE, "PatientAge": A.REMOVE, "PatientSize": A.REMOVE, "PatientWeight": A.REMOVE,
    "AdditionalPatientHistory": A.REMOVE,
    # General Study
    "StudyInstanceUID": A.UID, "StudyDate": A.EMPTY, "StudyTime": A.EMPTY, "ReferringPhysicianName": A.EMPTY,
    "StudyID": A.EMPTY, "AccessionNumber": A.EMPTY, "StudyDescription": A.REMOVE,
    "PhysiciansOfRecord": A.REMOVE, "NameOfPhysiciansReadingStudy": A.REMOVE,
    # General Equipment (where the derived series was made: the source's site)
    "InstitutionName": A.REMOVE, "InstitutionAddress": A.REMOVE, "InstitutionalDepartmentName": A.REMOVE,
    # References and image description (no identity in them)
    "SourceImageSequence": A.UID_ITEMS, "ReferencedSOPInstanceUID": A.UID, "Modality": A.KEEP,
    "SpecificCharacterSet": A.KEEP, "Laterality": A.KEEP, "LossyImageCompression": A.KEEP, "LossyImageCompressionRatio": A.KEEP,
    "LossyImageCompressionMethod": A.KEEP, "BurnedInAnnotation": A.KEEP, "PixelSpacing": A.KEEP,
    "SequenceOfUltrasoundRegions": A.KEEP,
}

PATIENT_NAME_DUMMY = "ANONYMOUS^PATIENT"
# DeidentificationMethod is LO (64 characters a value), so one statement per value
METHOD = ("PS3.15 E.1 Basic Application Confidentiality Profile", f"ganrt {__version__}",
          "UIDs replaced by keyed hash", "dates removed", "pixel data not cleaned")
# (code value, coding scheme, meaning): CID 7050 De-identification Method
METHOD_CODES = (("113100", "DCM", "Basic Application Confidentiality Profile"),)


class Deidentifier:
    def __init__(self, salt: bytes | None = None) -> None:
        env = os.environ.get(SALT_ENV)
        self.salt = salt if salt is not None else (env.encode() if env else os.urandom(32))

    def _digest(self, value: str) -> bytes:
        return hmac.new(self.salt, value.encode(), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        """A UID under 2.25 (an integer from the keyed hash), <= 44 characters."""
        return "2.25." + str(int.from_bytes(self._digest("uid:" + value)[:16], "big"))

    def pseudonym(self, value: str) -> str:
        return "ANON-" + self._digest("id:" + value).hex()[:10].upper() if value else "ANON"

    def apply(self, ds: Any) -> None:
        """Apply ACTIONS to ``ds`` in place (recursing into sequences). An attribute without an
        entry is removed: only what the table says may stay, stays."""
        for elem in list(ds):
            kw = elem.keyword
            action = ACTIONS.get(kw, Action.REMOVE) if kw else Action.REMOVE  # private/unknown: removed
            if action is Action.REMOVE:
                del ds[elem.tag]
            elif action is Action.EMPTY:
                elem.value = [] if elem.VR == "SQ" else ""
            elif action is Action.UID:
                elem.value = self.uid(str(elem.value))
            elif action is Action.DUMMY:
                elem.value = PATIENT_NAME_DUMMY if kw == "PatientName" else self.pseudonym(str(elem.value or ""))
            elif action is Action.UID_ITEMS:
                for item in elem.value:
                    self._map_uids(item)

    def _map_uids(self, ds: Any) -> None:
        for elem in ds:
            if elem.VR == "UI" and not elem.keyword.endswith("ClassUID") and elem.value:
                elem.value = self.uid(str(elem.value))
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._map_uids(item)
