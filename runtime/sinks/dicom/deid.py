"""De-identification of the attributes a derived DICOM series copies from its source.

DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile: the action table is
data (``deid_profile.BASIC_PROFILE``, resolved by tag), applied recursively. At the top level
of a derived series only what the table lists (or ``deid_profile.RETAINED``) may stay; inside
a sequence that stays (SequenceOfUltrasoundRegions, SourceImageSequence) the same table acts
on every item -- a PatientName nested anywhere is replaced -- and the item's own attributes,
which the profile retains, stay. Private attributes are removed at every level. UIDs are
replaced by one derived from them with a keyed hash (the same input UID always gives the same
output UID under the same key, so several series of one study stay one de-identified study).

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
from typing import Any

from ... import __version__
from .deid_profile import BASIC_PROFILE, DERIVED_TYPE2, RETAINED, Action, resolve, tag_actions

SALT_ENV = "GANRT_DEID_SALT"

#: Keyword -> the action a derived series gets (the table resolved; see deid_profile.resolve).
ACTIONS: dict[str, Action] = {**{kw: resolve(kw, code, DERIVED_TYPE2) for kw, code in BASIC_PROFILE.items()},
                              **{kw: Action.KEEP for kw in RETAINED}}

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

    def apply(self, ds: Any, *, top: bool = True) -> None:
        """The profile on ``ds`` in place, recursing into every sequence that stays. At the top
        level an attribute the table does not name is removed; inside an item it is retained
        (the profile's default), private attributes never are."""
        table = tag_actions(DERIVED_TYPE2)
        for elem in list(ds):
            action = table.get(elem.tag) if not elem.tag.is_private else Action.REMOVE
            if action is None:
                action = Action.REMOVE if top else Action.KEEP
            if action is Action.REMOVE:
                del ds[elem.tag]
            elif action is Action.EMPTY:
                elem.value = [] if elem.VR == "SQ" else ""
            elif action is Action.UID:
                elem.value = self.uid(str(elem.value)) if elem.value else elem.value
            elif action is Action.DUMMY:
                elem.value = self._dummy(elem)
            elif elem.VR == "SQ":  # KEEP or UID_ITEMS: the sequence stays, its items are cleaned
                for item in elem.value:
                    self.apply(item, top=False)
            elif not top and elem.VR == "UI" and elem.value and not elem.keyword.endswith("ClassUID"):
                elem.value = self.uid(str(elem.value))  # an instance UID the table does not name

    def _dummy(self, elem: Any) -> str:
        if elem.keyword == "PatientName":
            return PATIENT_NAME_DUMMY
        if elem.VR == "PN":
            return "ANONYMOUS"
        return self.pseudonym(str(elem.value or ""))
