"""A DICOM file written from pixels, as a modality would (rescale, photometric, spacing)."""

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def write_dicom(path, pixels, photometric="MONOCHROME2", slope=None, intercept=None, spacing=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=12)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if spacing is not None:
        ds.ImagerPixelSpacing = spacing
    ds.save_as(path, enforce_file_format=True)
