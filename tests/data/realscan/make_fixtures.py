"""Regenerates the real-scan fixtures: ``python tests/data/realscan/make_fixtures.py``.

Small crops (the middle of the frame) of pydicom's real ultrasound acquisitions with the bundled
ultrasound students' fp32 output, run on the whole frame (``--region full``).
They are the harm the local-mean check must catch; they stay as they are when the bundles are
retrained (they record what those bundles did)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganrt.export.realscans import REPORT, TUNE, run_bundle

HERE = Path(__file__).resolve().parent
MODELS = Path(__file__).resolve().parents[3] / "runtime" / "models"
CROP = 96


def main() -> None:
    for bundle in ("us-enhance", "us-sr2x"):
        for item in run_bundle(MODELS / bundle, TUNE + REPORT, region="full"):
            if item.index != 0:
                continue
            s = CROP * (item.raw.shape[0] // item.raw_in.shape[0])
            y0, x0 = (item.raw.shape[0] - s) // 2, (item.raw.shape[1] - s) // 2
            sl = (slice(y0, y0 + s), slice(x0, x0 + s))
            np.savez_compressed(HERE / f"{bundle}_{Path(item.name).stem}.npz", raw=item.raw[sl], out=item.out[sl],
                                frame_w=item.shown_hw[1])
            print(bundle, item.name, item.raw[sl].shape)


if __name__ == "__main__":
    main()
