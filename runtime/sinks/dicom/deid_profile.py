"""DICOM PS3.15 Annex E, Table E.1-1: the Basic Application Level Confidentiality Profile, as data.

Keyword -> the table's action code, as the standard writes it:

    D  replace with a non-empty dummy value        Z  replace with an empty (or dummy) value
    X  remove                                      K  keep (sequences: keep, clean inside)
    C  clean (replace with values of similar meaning; ganrt cannot do this for free text: X)
    U  replace the UID with a consistent one       U* keep a reference sequence, map its UIDs

Compound codes (``X/Z``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) let the profile pick by the attribute's
type in the IOD written; ``resolve`` picks for a derived series (Z where the attribute is Type 2
there, else X; U* for references the series keeps). Private attributes are X at every level
(no Retain Safe Private Option). pydicom has no such table (its ``datadict`` maps keywords
to tags, which ``tag_actions`` uses), so it lives here.
"""

from __future__ import annotations

from enum import Enum
from functools import cache


class Action(Enum):
    DUMMY = "D"
    EMPTY = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"
    UID_ITEMS = "U*"


# Table E.1-1 (the attributes a clinical ultrasound / secondary-capture export carries; any
# attribute not listed at the top level of a derived series is removed anyway, see deid.py).
BASIC_PROFILE: dict[str, str] = {
    # Patient
    "PatientName": "Z", "PatientID": "Z", "IssuerOfPatientID": "X", "PatientBirthDate": "Z", "PatientBirthTime": "X",
    "PatientSex": "Z", "PatientSexNeutered": "X/Z", "OtherPatientIDs": "X", "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X", "PatientBirthName": "X", "PatientAddress": "X", "PatientTelephoneNumbers": "X",
    "PatientMotherBirthName": "X", "EthnicGroup": "X", "Occupation": "X", "PatientComments": "X",
    "PatientAge": "X", "PatientSize": "X", "PatientWeight": "X", "AdditionalPatientHistory": "X",
    "MedicalAlerts": "X", "Allergies": "X", "SmokingStatus": "X", "PregnancyStatus": "X", "LastMenstrualDate": "X",
    "PatientReligiousPreference": "X", "MilitaryRank": "X", "BranchOfService": "X", "CountryOfResidence": "X",
    "RegionOfResidence": "X", "MedicalRecordLocator": "X", "PatientState": "X", "SpecialNeeds": "X",
    "ReferencedPatientSequence": "X", "ReferencedPatientAliasSequence": "X", "PatientInsurancePlanCodeSequence": "X",
    "PatientPrimaryLanguageCodeSequence": "X", "ResponsiblePerson": "X", "ResponsibleOrganization": "X",
    "PatientTransportArrangements": "X", "CurrentPatientLocation": "X", "AdmissionID": "X",
    "IssuerOfAdmissionID": "X", "AdmittingDate": "X", "AdmittingTime": "X", "AdmittingDiagnosesDescription": "X",
    "AdmittingDiagnosesCodeSequence": "X", "ServiceEpisodeID": "X", "ServiceEpisodeDescription": "X",
    "IssuerOfServiceEpisodeID": "X", "VisitComments": "X",
    # Study, request, procedure steps
    "StudyInstanceUID": "U", "StudyDate": "Z", "StudyTime": "Z", "StudyID": "Z", "AccessionNumber": "Z",
    "StudyDescription": "X", "StudyComments": "X", "StudyIDIssuer": "X", "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X", "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X", "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X", "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X", "RequestingPhysician": "X", "RequestingService": "X",
    "ReasonForStudy": "X", "ReasonForTheImagingServiceRequest": "X", "RequestedProcedureDescription": "X/Z",
    "RequestedProcedureID": "X", "RequestedProcedureComments": "X", "RequestedProcedureLocation": "X",
    "RequestedContrastAgent": "X", "RequestAttributesSequence": "X", "ImagingServiceRequestComments": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z", "FillerOrderNumberImagingServiceRequest": "Z",
    "OrderEnteredBy": "X", "OrderEntererLocation": "X", "OrderCallbackPhoneNumber": "X",
    "ReferencedStudySequence": "X/Z", "ReferencedPerformedProcedureStepSequence": "X/Z/D",
    "PerformedProcedureStepID": "X", "PerformedProcedureStepDescription": "X", "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X", "PerformedProcedureStepEndDate": "X", "PerformedProcedureStepEndTime": "X",
    "PerformedLocation": "X", "PerformedStationAETitle": "X", "PerformedStationName": "X",
    "CommentsOnThePerformedProcedureStep": "X", "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepStartDate": "X", "ScheduledProcedureStepStartTime": "X",
    "ScheduledProcedureStepEndDate": "X", "ScheduledProcedureStepEndTime": "X",
    "ScheduledProcedureStepLocation": "X", "ScheduledPerformingPhysicianName": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X", "ScheduledStationAETitle": "X",
    "ScheduledStationName": "X", "ScheduledStudyLocation": "X", "ScheduledStudyLocationAETitle": "X",
    "ScheduledPatientInstitutionResidence": "X", "ScheduledHumanPerformersSequence": "X",
    "ActualHumanPerformersSequence": "X", "HumanPerformerName": "X", "HumanPerformerOrganization": "X",
    "ProtocolName": "X/D", "AcquisitionProtocolDescription": "X", "PreMedication": "X",
    # Series, equipment, staff
    "SeriesInstanceUID": "U", "SeriesDate": "X/D", "SeriesTime": "X/D", "SeriesDescription": "X",
    "PerformingPhysicianName": "X", "PerformingPhysicianIdentificationSequence": "X", "OperatorsName": "X/Z/D",
    "OperatorIdentificationSequence": "X", "InstitutionName": "X/Z/D", "InstitutionAddress": "X",
    "InstitutionalDepartmentName": "X", "InstitutionCodeSequence": "X/Z/D", "StationName": "X/Z/D",
    "DeviceSerialNumber": "X/Z/D", "DeviceUID": "U", "DetectorID": "X/D", "GantryID": "X/D", "GeneratorID": "X/D",
    "PlateID": "X", "CassetteID": "X", "ModifyingDeviceID": "X", "DateOfLastCalibration": "X",
    "TimeOfLastCalibration": "X", "ContributionDateTime": "X/D", "ContributionDescription": "X",
    # Instance, acquisition, content
    "SOPInstanceUID": "U", "MediaStorageSOPInstanceUID": "U", "InstanceCreationDate": "X/D",
    "InstanceCreationTime": "X/Z/D", "InstanceCreatorUID": "U", "InstanceCoercionDateTime": "X",
    "AcquisitionDate": "X/Z", "AcquisitionTime": "X/Z", "AcquisitionDateTime": "X/Z/D", "ContentDate": "Z/D",
    "ContentTime": "Z/D", "DateOfSecondaryCapture": "X", "TimeOfSecondaryCapture": "X",
    "AcquisitionDeviceProcessingDescription": "X/D", "AcquisitionComments": "X", "AcquisitionContextSequence": "X",
    "ImageComments": "X", "FrameComments": "X", "DerivationDescription": "X", "ImagePresentationComments": "X",
    "IdentifyingComments": "X", "TextComments": "X", "TextString": "X", "ContentSequence": "X",
    "ContentCreatorName": "Z", "ContentCreatorIdentificationCodeSequence": "X", "ContrastBolusAgent": "Z/D",
    "IconImageSequence": "X", "GraphicAnnotationSequence": "D",
    "ModifiedAttributesSequence": "X", "OriginalAttributesSequence": "X", "DigitalSignaturesSequence": "X",
    "DigitalSignatureUID": "X", "MAC": "X", "ReferencedDigitalSignatureSequence": "X",
    "ReferencedSOPInstanceMACSequence": "X", "DataSetTrailingPadding": "X", "TimezoneOffsetFromUTC": "X",
    "PersonName": "D", "PersonAddress": "X", "PersonTelephoneNumbers": "X", "PersonIdentificationCodeSequence": "D",
    "VerifyingObserverName": "D", "VerifyingObserverSequence": "D", "VerifyingObserverIdentificationCodeSequence": "Z",
    "VerifyingOrganization": "X", "AuthorObserverSequence": "X", "ParticipantSequence": "X",
    "CustodialOrganizationSequence": "X", "ReviewerName": "X/Z", "DistributionName": "X", "DistributionAddress": "X",
    "InterpretationText": "X", "InterpretationAuthor": "X", "InterpretationRecorder": "X",
    "InterpretationTranscriber": "X", "InterpretationApproverSequence": "X", "PhysicianApprovingInterpretation": "X",
    "InterpretationDiagnosisDescription": "X", "InterpretationIDIssuer": "X", "ResultsIDIssuer": "X",
    "ResultsComments": "X", "ResultsDistributionListSequence": "X", "Impressions": "X",
    "NamesOfIntendedRecipientsOfResults": "X", "IntendedRecipientsOfResultsIdentificationSequence": "X",
    "TopicTitle": "X", "TopicSubject": "X", "TopicAuthor": "X", "TopicKeywords": "X",
    # References and other UIDs
    "FrameOfReferenceUID": "U", "SynchronizationFrameOfReferenceUID": "U", "ReferencedFrameOfReferenceUID": "U",
    "RelatedFrameOfReferenceUID": "U", "ReferencedSOPInstanceUID": "U", "ReferencedSOPInstanceUIDInFile": "U",
    "RequestedSOPInstanceUID": "U", "AffectedSOPInstanceUID": "X", "FailedSOPInstanceUIDList": "U",
    "ConcatenationUID": "U", "DimensionOrganizationUID": "U", "IrradiationEventUID": "U", "FiducialUID": "U",
    "DoseReferenceUID": "U", "StorageMediaFileSetUID": "U", "TransactionUID": "U", "UID": "U",
    "ContextGroupExtensionCreatorUID": "U", "TemplateExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U", "CreatorVersionUID": "U", "LargePaletteColorLookupTableUID": "U",
    "SourceImageSequence": "X/Z/U*", "ReferencedImageSequence": "X/Z/U*",
}

# What the profile does not list is retained by it; a derived series keeps only these of them
# at its top level (image description without identity), deid.py removes the rest.
RETAINED: frozenset[str] = frozenset({
    "Modality", "SpecificCharacterSet", "Laterality", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "BurnedInAnnotation", "PixelSpacing", "SequenceOfUltrasoundRegions",
    "PositionReferenceIndicator",
})

# Type 2 attributes of a derived series: present even when empty (dicom_out writes them).
DERIVED_TYPE2: frozenset[str] = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "Laterality",
})

# ganrt's own choices where the profile allows several: a dummy name and a keyed pseudonym
# (the profile's Z permits a dummy) so several series of one patient stay one de-identified patient.
PROJECT: dict[str, Action] = {"PatientName": Action.DUMMY, "PatientID": Action.DUMMY}


def resolve(keyword: str, code: str, type2: frozenset[str] | set[str] = frozenset()) -> Action:
    """One action for a derived series: the project's choice, else the code's first option that
    is valid there (Z for a Type 2 attribute that must stay present; C and D on a sequence: X)."""
    if keyword in PROJECT:
        return PROJECT[keyword]
    options = code.split("/")
    if "U*" in options:
        return Action.UID_ITEMS
    if len(options) == 1:
        only = Action(options[0])
        if only is Action.CLEAN or (only is Action.DUMMY and keyword.endswith("Sequence")):
            return Action.REMOVE
        return only
    if "Z" in options and keyword in type2:
        return Action.EMPTY
    return Action.REMOVE if "X" in options else Action.EMPTY


@cache
def tag_actions(type2: frozenset[str]) -> dict[int, Action]:
    """The table by tag (pydicom's data dictionary maps the keywords), resolved for a derived
    series whose Type 2 attributes are ``type2``."""
    from pydicom.datadict import tag_for_keyword

    table = {tag_for_keyword(kw): resolve(kw, code, type2) for kw, code in BASIC_PROFILE.items()}
    table.update({tag_for_keyword(kw): Action.KEEP for kw in RETAINED})
    return table
