"""The enhanced cine as a new DICOM series: the sink, the series attributes, de-identification."""
