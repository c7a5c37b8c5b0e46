"""napari-segnet: human-in-the-loop semantic segmentation (U-Net, FCN, FC-DenseNet) for napari."""

__version__ = "0.1.0"
