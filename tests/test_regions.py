"""The camera ↔ region maths of reviewed regions (training/regions.py), against hand-computed views."""

import numpy as np

from napari_segnet.training.regions import Region, view_of, view_region


def test_view_region_is_the_pixels_a_camera_shows():
    # a 200 × 100 screen-px canvas at zoom 2 shows 100 × 50 world units around (60, 40); pixels of 0.5 units
    # shifted by (10, 0): world y 10…110 → rows [0, 201), world x 15…65 → columns [30, 131), clipped to 120
    # (pixel centres sit on integer coordinates: the half pixel at each edge counts)
    region = view_region((60, 40), (200, 100), 2.0, (0.5, 0.5), (10, 0), (300, 120))
    assert region == Region(0, 0, 30, 201, 120)


def test_view_of_centres_a_tile_and_view_region_gives_it_back():
    rows, cols = slice(128, 256), slice(0, 100)
    center, zoom = view_of(rows, cols, (600, 800), (2.0, 2.0), (5.0, -3.0))
    np.testing.assert_allclose(center, [5 + 2 * 192, -3 + 2 * 50])
    assert zoom == 0.6 * 600 / (128 * 2)  # the tile's longer side fills 60 % of the canvas's shorter one
    shown = view_region(center, (600, 800), zoom, (2.0, 2.0), (5.0, -3.0), (1000, 1000))
    assert shown.y0 <= 128 and shown.y1 >= 256 and shown.x0 <= 0 and shown.x1 >= 100  # the tile and a margin
