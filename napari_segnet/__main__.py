"""``python -m napari_segnet …`` = ``napari-segnet …`` (so ``torchrun -m napari_segnet train …`` works)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
