"""intraop-enhance's real-photograph training pairs (export/data/photo_pairs.py) and the mixed training set."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage")

from ganrt.export.data.photo_pairs import PhotoPairConfig, render_photo_pair
from ganrt.export.realphotos import REPORT, TUNE, load_all
from ganrt.export.tasks import get_task


@pytest.fixture(scope="module")
def photos():
    return list(load_all(TUNE[:2]).values())


def test_pairs_are_deterministic_by_seed_and_sized(photos):
    cfg = PhotoPairConfig(out_hw=(64, 96))
    a, b = render_photo_pair(5, photos, cfg), render_photo_pair(5, photos, cfg)
    assert np.array_equal(a.input, b.input) and np.array_equal(a.target, b.target)
    assert a.input.shape == a.target.shape == (64, 96, 3) and a.sector.all() and not a.lesion.any()
    assert not np.array_equal(render_photo_pair(6, photos, cfg).target, a.target)


def test_clean_pairs_are_identity_and_the_rest_are_degraded(photos):
    cfg = PhotoPairConfig(out_hw=(64, 64))
    every_clean = [render_photo_pair(s, photos, PhotoPairConfig(out_hw=(64, 64), clean_share=1.0)) for s in range(3)]
    assert all(np.array_equal(p.input, p.target) for p in every_clean)
    never = [render_photo_pair(s, photos, PhotoPairConfig(out_hw=(64, 64), clean_share=0.0)) for s in range(6)]
    assert all(np.abs(p.input - p.target).mean() > 1.0 / 255 for p in never)
    shares = np.mean([np.array_equal(p.input, p.target) for p in (render_photo_pair(s, photos, cfg) for s in range(40))])
    assert abs(shares - cfg.clean_share) < 0.2  # about clean_share (40 draws)


def test_colour_is_randomised_across_pairs(photos):
    cfg = PhotoPairConfig(out_hw=(48, 48), crop=(1.0, 1.0), speculars=(0, 0), clean_share=1.0)
    means = np.array([render_photo_pair(s, photos[:1], cfg).target.reshape(-1, 3).mean(0) for s in range(12)])
    ratio = means[:, 0] / np.maximum(means[:, 2], 1e-3)  # red over blue of the same photograph
    assert ratio.max() / ratio.min() > 1.2


def test_intraop_trains_on_endoscopy_and_tuning_photographs_but_is_held_out_on_endoscopy():
    task = get_task("intraop-enhance")
    train = task.make_train_pairs(range(0, 6), (64, 64))
    assert train.inputs.shape == (6, 64, 64, 3) and train.lesion[:3].any() and not train.lesion[3:].any()
    held = task.make_pairs(range(900_000, 900_002), (64, 64))
    assert held.lesion.any(axis=(1, 2)).all()  # the simulated held-out set is unchanged: endoscopy only
    assert not set(TUNE) & set(REPORT)


def test_training_endoscopy_is_recoloured_alike_in_input_and_target():
    """One colour draw per training pair, the same for its input and target; held-out frames keep their palette."""
    from ganrt.export.data.photo_pairs import Recolour

    task = get_task("intraop-enhance")
    train = task.make_train_pairs(range(0, 8), (64, 64))  # endoscopy first: odd seeds 1, 3, 5, 7
    plain = task.make_pairs(range(1, 8, 2), (64, 64))
    hues = []
    for i in range(4):
        assert not np.array_equal(train.targets[i], plain.targets[i])
        lab = [cv2.cvtColor(im, cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0) for im in (plain.targets[i], train.targets[i])]
        hues.append(np.degrees(np.arctan2(lab[1][2], lab[1][1]) - np.arctan2(lab[0][2], lab[0][1])))
        # the same transform on both: recolouring the plain input with the target's draw gives the training input
        rc = Recolour.draw(np.random.default_rng([2 * i + 1, 0xC01]), PhotoPairConfig().wb_gain, PhotoPairConfig().hue_deg)
        np.testing.assert_allclose(rc(plain.inputs[i]), train.inputs[i], atol=1e-6)
        np.testing.assert_allclose(rc(plain.targets[i]), train.targets[i], atol=1e-6)
    assert np.ptp(hues) > 5.0  # the mean hue moves by a different angle per pair

