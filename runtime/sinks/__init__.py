"""Where frames go: files and windows, labels and provenance, DICOM series, other processes."""
