import cv2
import numpy as np
import pytest

from helpers.dicom import write_dicom
from spinefm.data.image_io import find_image, looks_inverted, read_image
from spinefm.data.problems import DataError


def radiograph(dtype=np.uint8, high=200):
    """Dark border, bright centre: how a radiograph looks."""
    image = np.full((40, 30), 10, dtype)
    image[10:30, 8:22] = high
    return image


def test_reads_8_and_16_bit_as_they_are(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), radiograph())
    cv2.imwrite(str(tmp_path / "b.png"), radiograph(np.uint16, 4000))
    a, b = read_image(tmp_path / "a.png"), read_image(tmp_path / "b.png")
    assert a.pixels.dtype == np.uint8 and a.pixels.max() == 200
    assert b.pixels.dtype == np.uint16 and b.pixels.max() == 4000
    assert a.spacing_mm is None


def test_rgb_becomes_grey(tmp_path):
    grey = radiograph()
    cv2.imwrite(str(tmp_path / "g.png"), np.dstack([grey] * 3))
    colour = np.dstack([grey, grey // 2, grey])
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png").pixels, grey)
    assert read_image(tmp_path / "c.png").pixels.shape == grey.shape


def test_names_missing_corrupt_and_empty_files(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    cases = {"nothing.png": "missing_image", "bad.jpg": "unreadable_image", "empty.png": "unreadable_image"}
    for name, kind in cases.items():
        with pytest.raises(DataError) as caught:
            read_image(tmp_path / name, image_id="case")
        assert caught.value.problem.kind == kind
        assert caught.value.problem.path.endswith(name)
        assert caught.value.problem.image_id == "case"


def test_auto_invert_fixes_white_background(tmp_path):
    cv2.imwrite(str(tmp_path / "inv.png"), 255 - radiograph())
    assert looks_inverted(255 - radiograph()) and not looks_inverted(radiograph())
    plain = read_image(tmp_path / "inv.png")
    fixed = read_image(tmp_path / "inv.png", auto_invert=True)
    assert not plain.inverted and fixed.inverted
    np.testing.assert_array_equal(fixed.pixels, radiograph())


def test_dicom_rescale_monochrome1_and_spacing(tmp_path):
    stored = radiograph(np.uint16, 3000)
    write_dicom(tmp_path / "x.dcm", 4095 - stored, "MONOCHROME1", slope=2, intercept=-100, spacing=[0.15, 0.16])
    loaded = read_image(tmp_path / "x.dcm")
    assert loaded.spacing_mm == (0.15, 0.16) and loaded.inverted
    # rescaled values 2*v - 100, then inverted within their range: background dark again
    rescaled = 2.0 * (4095 - stored) - 100
    np.testing.assert_allclose(loaded.pixels, rescaled.max() + rescaled.min() - rescaled)
    assert loaded.pixels[0, 0] < loaded.pixels[20, 15]


def test_dicom_found_without_suffix(tmp_path):
    write_dicom(tmp_path / "IM0001", radiograph(np.uint16, 1000))
    loaded = read_image(tmp_path / "IM0001")
    assert loaded.pixels.dtype == np.uint16 and loaded.pixels.max() == 1000 and not loaded.inverted


def test_find_image_any_suffix(tmp_path):
    cv2.imwrite(str(tmp_path / "L00001.png"), radiograph())
    assert find_image(tmp_path, "L00001") == tmp_path / "L00001.png"
    assert find_image(tmp_path, "L00002") is None
