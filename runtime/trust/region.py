"""The imaging region: the part of a frame the model may change (ultrasound sector, scope circle).

Everything outside it is scanner UI (text, depth scale, patient data) or black surround, and
leaves the pipeline exactly as it came in. A region comes from the device profile or
``--region``: ``full`` (the whole frame), a rectangle, a polygon, a mask image, or ``auto``:

- **auto, from motion** (the usual case): the per-pixel temporal standard deviation over the
  first ``frames`` frames. Speckle and tissue change from frame to frame; burned-in UI does
  not. Moving pixels -> morphological opening (drops compression noise around text) ->
  largest connected component -> convex hull (fills anechoic cysts and the dark, barely
  moving edges of a sector). Static marks *inside* the hull that are bright or coloured
  (calipers, in-sector labels) are carved out, so they pass through unchanged too (so does
  a bright reflector that did not move while frames were collected: the safe direction).
- **auto, from one frame** (a still image, a frozen loop, ``auto:1``): intensity after a
  median filter (which erases thin text strokes) -> opening -> the component shaped most like
  an image area (large, solid; not a full-width header or toolbar band, not a line of text) ->
  hull. On a clean digital black background the threshold is black itself, so a fan whose deep
  part is anechoic is found whole (region_detect.py).
- **auto, from the file** (a DICOM source with a Sequence of Ultrasound Regions): its 2D tissue
  and colour-flow rectangles, after checking that they fit the frame (files resized or cropped
  after acquisition keep the original's coordinates: those are rejected, with the reason in the
  region's ``note``), and inside each rectangle the region detected there (a rectangle bounds a
  fan; its black corners and any text inside it are not tissue). Source ``dicom-us-regions``.
- Neither finds a plausible region (a blank stream): the whole frame, with a warning.

While auto-detection collects its frames, those frames are shown **raw** (reason
``region-pending``): a full-frame enhancement would touch the UI it is about to protect,
and the guarantee "outside is untouched" then holds for every frame. At 30 fps the default
15 frames are half a second. A source that says it has fewer frames collects only those; a
change of frame size starts detection again.

The parts, by job: region_config.py (how a region is asked for), region_mask.py (``Box``, ``Region``),
region_detect.py (finding the image area in frames), region_track.py (each frame's region over a
stream). This module gathers their names, the ones the rest of ganrt imports.
"""

from __future__ import annotations

from .region_config import DEFAULT_FRAMES, DEFAULT_MODE_BY_MODALITY, RegionConfig, RegionMode
from .region_detect import MIN_AREA_FRACTION, detect_in_boxes, detect_motion, detect_still, luma_u8, static_marks
from .region_mask import Box, Region
from .region_track import RegionOutside, RegionTracker, detect

__all__ = ["DEFAULT_FRAMES", "DEFAULT_MODE_BY_MODALITY", "MIN_AREA_FRACTION", "Box", "Region", "RegionConfig",
           "RegionMode", "RegionOutside", "RegionTracker", "detect", "detect_in_boxes", "detect_motion",
           "detect_still", "luma_u8", "static_marks"]
