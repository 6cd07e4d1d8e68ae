"""Before/after montages on the real acquisitions."""

from __future__ import annotations

import cv2
import pytest

from ganrt.benchmarks.realscan_compare import compare, main
from ganrt.benchmarks.realscan_data import load_annotations, locate
from ganrt.benchmarks.realscan_report import LABEL_H
from ganrt.runtime.model.manifest import bundled_model_dir

INSTALLED = [a.name for a in load_annotations() if locate(a)[0] is not None]


@pytest.mark.skipif(not INSTALLED, reason="no real acquisition installed")
def test_a_bundle_against_itself_shows_the_same_panels(tmp_path):
    d = bundled_model_dir("us-enhance")
    (p,) = compare(d, d, "us-enhance", tmp_path, names=(INSTALLED[0],))
    assert p.name == f"compare_us-enhance_{INSTALLED[0]}.png"
    img = cv2.imread(str(p))
    w = img.shape[1] // 3
    top = img[LABEL_H : img.shape[0] // 2]  # below the labels
    assert (top[:, w : 2 * w] == top[:, 2 * w :]).all()  # before == now, panel for panel
    assert (top[:, :w] != top[:, w : 2 * w]).any()  # and the model changed the input


def test_missing_old_bundle_is_an_error(tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - any failure will do: what matters is that it does not pass
        main(["--old", str(tmp_path / "nothing"), "--out", str(tmp_path)])
