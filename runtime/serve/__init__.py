"""Serving frames: the frame loop, the capture hand-over, the deadline policy and tiers, one or several streams."""
