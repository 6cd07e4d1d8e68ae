"""Frames to a second process: the sink, the shared-memory ring (writer) and its reader."""
