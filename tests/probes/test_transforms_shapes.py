"""Transforms do what they say on real digits; shapes put their ink where they should."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from abstain.data.ood import shift_image
from abstain.errors import InputError
from abstain.probes import transforms as T
from abstain.probes.one_vs_seven import TOP_BAR_Y, bar, special_images
from abstain.probes.shapes import draw_lines, make_shapes
from abstain.probes.sweeps import SWEEPS
from abstain.tensors import mass_centres, recentre


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:50]


def _centre_of_mass(images):
    return np.array([ndimage.center_of_mass(im.astype(np.float64)) for im in images])   # (row, col)


def test_identity_steps_leave_images_unchanged(digits):
    for sweep in SWEEPS.values():
        assert sweep.identity in sweep.values, sweep.name
        out = sweep.apply(digits, sweep.identity)
        assert out.dtype == np.uint8 and out.shape == digits.shape
        np.testing.assert_array_equal(out, digits, err_msg=sweep.name)


def test_translate_matches_shift_image_and_moves_the_mass(digits):
    for dx, dy in [(3, 0), (-5, 2), (0, -8), (7, 7)]:
        out = T.translate(digits, dx=dx, dy=dy)
        expected = np.stack([shift_image(im, dy, dx) for im in digits])
        np.testing.assert_array_equal(out, expected)
    # a digit well inside the frame keeps all its ink under a 2 px move, and its mass moves 2 px
    inner = [im for im in digits if im[:3].sum() == 0 and im[:, -3:].sum() == 0][:10]
    moved = T.translate(np.stack(inner), dx=2, dy=-2)
    np.testing.assert_allclose(_centre_of_mass(moved) - _centre_of_mass(inner), [[-2, 2]] * len(inner), atol=1e-9)
    assert T.translate(digits, dx=28).sum() == 0


def test_recentre_undoes_a_shift_of_a_digit_that_stays_in_frame(digits):
    np.testing.assert_allclose(mass_centres(digits), _centre_of_mass(digits), atol=1e-9)
    assert mass_centres(np.zeros((1, 28, 28)))[0].tolist() == [13.5, 13.5]      # blank: the frame's centre
    target = mass_centres(digits).mean(0)
    placed = recentre(digits, target)
    assert (np.abs(mass_centres(placed) - target) <= 0.5).all()
    inner = np.stack([im for im in digits if im[:4].sum() == 0 and im[-4:].sum() == 0
                      and im[:, :4].sum() == 0 and im[:, -4:].sum() == 0][:10])
    assert len(inner) == 10
    for dx, dy in [(4, 0), (-3, 2), (0, -4)]:
        np.testing.assert_array_equal(recentre(T.translate(inner, dx=dx, dy=dy), target), recentre(inner, target))
    # dtype kept; a float copy moves the same way
    assert placed.dtype == np.uint8
    np.testing.assert_array_equal(recentre(digits / 255.0, target), placed / 255.0)


def test_inversion_and_rotation(digits):
    np.testing.assert_array_equal(T.invert(digits, 1.0), 255 - digits)
    np.testing.assert_array_equal(T.invert(digits, 0.5), np.full_like(digits, 128))    # 127.5 rounds to 128
    twice = T.rotate(T.rotate(digits, 180), 180).astype(int)
    assert np.abs(twice - digits).max() <= 1                                    # up to interpolation
    np.testing.assert_array_equal(T.rotate(digits, 90), np.rot90(digits, 1, axes=(1, 2)))   # counter-clockwise
    np.testing.assert_array_equal(T.rotate(digits, 180), digits[:, ::-1, ::-1])
    # a 45 degree turn keeps the ink (within interpolation loss) and the mass near the centre
    ink = digits.astype(np.float64).sum((1, 2))
    assert np.all(T.rotate(digits, 45).astype(np.float64).sum((1, 2)) > 0.8 * ink)


def test_scale_thickness_noise(digits):
    ink = lambda x: (x > 127).sum((1, 2)).astype(np.float64)   # noqa: E731
    assert np.all(ink(T.scale(digits, 1.5)) > 1.5 * ink(digits))
    assert np.all(ink(T.scale(digits, 0.5)) < 0.5 * ink(digits))
    assert np.all(ink(T.thickness(digits, 1)) > ink(digits))
    assert np.all(ink(T.thickness(digits, -1)) < ink(digits))
    assert np.all(T.thickness(digits, 2) >= T.thickness(digits, 1))            # dilation is monotone
    a, b = T.noise(digits, 0.2, seed=3), T.noise(digits, 0.2, seed=3)
    np.testing.assert_array_equal(a, b)                                        # seeded
    d = a.astype(float) - digits
    mid = (digits > 60) & (digits < 190)                                       # unclipped pixels
    assert abs(d[mid].std() - 0.2 * 255) < 0.1 * 0.2 * 255
    with pytest.raises(InputError):
        T.scale(digits, 0)
    with pytest.raises(InputError):
        T.invert(digits, 1.5)


def _rows_with_ink(im, level=100):
    return np.flatnonzero(im.max(1) > level)


def test_shapes_are_mnist_like_and_deterministic():
    names, images = make_shapes()
    names2, images2 = make_shapes()
    assert names == names2 and np.array_equal(images, images2)
    assert images.shape == (len(names), 28, 28) and images.dtype == np.uint8
    assert len(set(names)) == len(names) and any(n.startswith("letter") for n in names)
    assert np.all(images[:, 0, :] == 0) and np.all(images[:, :, 0] == 0)     # black border
    assert np.all(images.max((1, 2)) == 255)
    by = dict(zip(names, images))
    rows = _rows_with_ink(by["horizontal bar"])
    assert rows.min() >= 12 and rows.max() <= 16                               # ~2.5 px stroke at row 14
    assert 2 <= len(rows) <= 4


def test_one_vs_seven_images_put_ink_where_named(mnist):
    names, images = special_images(mnist)
    by = dict(zip(names, images))
    top = _rows_with_ink(by["top bar"])
    assert top.min() >= 7 and top.max() <= 10                                # where MNIST 7s have their bar
    assert by["top bar"][12:].sum() == 0                                     # no ink below the top rows
    assert _rows_with_ink(by["bottom bar"]).min() >= 21
    assert by["bottom bar"][:18].sum() == 0
    base = by["1 with base stroke"]
    assert base[22:25].sum() > by["1 (drawn)"][22:25].sum()                    # the extra stroke at the bottom
    np.testing.assert_array_equal(base >= by["1 (drawn)"], True)
    one = by["test 1 shifted +0 px"]
    assert mnist.y_test[np.flatnonzero((mnist.x_test == one).all((1, 2)))[0]] == 1
    np.testing.assert_array_equal(by["test 1 shifted -3 px"], shift_image(one, 0, -3))
    np.testing.assert_array_equal(bar(TOP_BAR_Y), by["top bar"])
    np.testing.assert_array_equal(draw_lines([(7, TOP_BAR_Y, 21, TOP_BAR_Y)]), by["top bar"])
