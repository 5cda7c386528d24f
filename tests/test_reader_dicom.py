"""DICOM films go through the readers like any other image: rescale, MONOCHROME1, spacing."""

import numpy as np

from helpers.dicom import write_dicom
from helpers.native_formats import write_nhanes
from spinefm.data.coco_writer import CocoWriter
from spinefm.data.readers.coco import CocoReader
from spinefm.data.readers.nhanes import NhanesReader
from spinefm.data.record import ImageRecord, Vertebra


def test_nhanes_layout_with_a_dicom_film(tmp_path):
    written = write_nhanes(tmp_path, ids=["L00001"], splits=None)
    jpeg = tmp_path / "imgs" / "L00001.jpg"
    pixels = written.images["L00001"].astype(np.uint16) * 16
    jpeg.unlink()
    write_dicom(tmp_path / "imgs" / "L00001.dcm", 4095 - pixels, "MONOCHROME1", spacing=[0.174, 0.174])
    record = NhanesReader(tmp_path, split="all")[0]
    assert record.image_path.suffix == ".dcm" and record.levels == written.expected_levels["L00001"]
    image = record.load_image()
    assert record.spacing_mm == (0.174, 0.174) and record.meta["inverted"]
    # inverted within the stored range [4095 - max, 4095 - min]: the original up to a constant shift
    shift = 4095 - int(pixels.min()) - int(pixels.max())
    np.testing.assert_array_equal(image.astype(int), pixels.astype(int) + shift)


def test_coco_with_dicom_file_names(tmp_path):
    (tmp_path / "images").mkdir()
    pixels = np.zeros((40, 30), np.uint16)
    pixels[10:20, 5:25] = 3000
    write_dicom(tmp_path / "images" / "film.dcm", pixels, spacing=[0.2, 0.3])
    writer = CocoWriter(tmp_path, "annotations.json")
    writer.add(ImageRecord("film", [Vertebra("L3", polygon=[[5, 10], [24, 10], [24, 19], [5, 19]])]), pixels)
    writer.images[0]["file_name"] = "film.dcm"  # point the JSON at the DICOM instead of the PNG copy
    writer.write()
    record = CocoReader(tmp_path, split="all")[0]
    np.testing.assert_array_equal(record.load_image(), pixels)
    assert record.spacing_mm == (0.2, 0.3)
