"""Fixed tables of the DICOM reader: spacing tags, the metadata whitelist, view codes, decoder packages."""

from __future__ import annotations

SPACING_TAGS = (
    ("ImagerPixelSpacing", "ImagerPixelSpacing (0018,1164)"),
    ("PixelSpacing", "PixelSpacing (0028,0030)"),
    ("NominalScannedPixelSpacing", "NominalScannedPixelSpacing (0018,2010)"),
)

# Non-identifying header fields copied into Mammogram.metadata (a whitelist: nothing else is carried).
KEPT_TAGS = (
    "Modality",
    "SOPClassUID",
    "Manufacturer",
    "ManufacturerModelName",
    "PresentationIntentType",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "ImageType",
    "BodyPartExamined",
    "ImageLaterality",
    "Laterality",
    "ViewPosition",
    "PatientOrientation",
    "ImagerPixelSpacing",
    "PixelSpacing",
    "NominalScannedPixelSpacing",
    "EstimatedRadiographicMagnificationFactor",
    "DetectorType",
    "KVP",
    "Exposure",
    "BodyPartThickness",
    "CompressionForce",
    "AnodeTargetMaterial",
    "FilterMaterial",
    "BreastImplantPresent",
    "PartialView",
    "PixelIntensityRelationship",
    "PixelIntensityRelationshipSign",
    "LossyImageCompression",
    "BurnedInAnnotation",
)

# DICOM CID 4014 (view for mammography): SNOMED-RT codes and code meanings -> ViewPosition abbreviations.
VIEW_CODES = {
    "R-10242": "CC",
    "R-10226": "MLO",
    "R-10224": "ML",
    "R-10228": "LM",
    "R-10230": "LMO",
    "R-10244": "FB",
    "R-102D0": "SIO",
    "R-40AAA": "ISO",
    "R-1024A": "XCCL",
    "R-1024B": "XCCM",
    "R-102CF": "XCC",
    "399162004": "CC",
    "399368009": "MLO",
    "399260004": "ML",
    "399352003": "LM",
}
VIEW_MEANINGS = {
    "cranio-caudal": "CC",
    "medio-lateral oblique": "MLO",
    "medio-lateral": "ML",
    "latero-medial": "LM",
    "latero-medial oblique": "LMO",
    "caudo-cranial (from below)": "FB",
    "cranio-caudal exaggerated laterally": "XCCL",
    "cranio-caudal exaggerated medially": "XCCM",
    "exaggerated cranio-caudal": "XCC",
}

# What to install when pydicom has no working decoder for a transfer syntax.
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (pip install pylibjpeg pylibjpeg-rle)",
    "1.2.840.10008.1.2.4.50": "Pillow or python-gdcm (pip install pillow python-gdcm)",
    "1.2.840.10008.1.2.4.51": "Pillow or python-gdcm (pip install pillow python-gdcm)",
    "1.2.840.10008.1.2.4.57": "python-gdcm (pip install python-gdcm) or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "python-gdcm (pip install python-gdcm) or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls (pip install pyjpegls) or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pyjpegls (pip install pyjpegls) or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)",
}

# Pillow and the python-gdcm wheel decode 8-bit JPEG only; 12-bit needs libjpeg (GPL-3, so not a dependency).
JPEG_12_BIT_PACKAGE = "pylibjpeg-libjpeg (pip install pylibjpeg pylibjpeg-libjpeg; GPL-3 licensed)"

TOMOSYNTHESIS_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.13.1.3", "1.2.840.10008.5.1.4.1.1.13.1.4"}
