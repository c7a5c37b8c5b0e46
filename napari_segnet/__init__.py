"""napari-segnet: human-in-the-loop semantic segmentation (U-Net, FCN, FC-DenseNet) for napari."""

from ._aliases import install as _install_aliases

__version__ = "0.1.0"

_install_aliases()
