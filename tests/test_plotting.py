"""Figures whose size is a promise: a decoded grid at one screen pixel per image pixel."""

import numpy as np
import pytest

from vae_jax.analysis import plotting


@pytest.mark.parametrize('n,side', [(30, 28), (10, 16)])
def test_grid_figure_draws_each_image_pixel_on_one_screen_pixel(tmp_path, n, side):
  import matplotlib.image as mpimg
  # Every decoded image a checkerboard of two greys, one image pixel per square:
  # only the grid is grey (the page is white, the text black), and a grid drawn
  # at any other scale would repeat or drop a row or column of the pattern.
  board = np.indices((side, side)).sum(axis=0) % 2
  decode = lambda z: np.broadcast_to((0.25 + 0.5 * board)[None, :, :, None],
                                     (len(z), side, side, 1))
  path = tmp_path / 'grid.png'
  plotting.save(plotting.grid_figure(decode, 'grid', n=n), str(path))
  pixels = mpimg.imread(str(path))[..., 0]
  centre = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2 - 2:pixels.shape[1] // 2]
  grey = np.isin(pixels, centre)   # the two greys, as drawn; text never fills a line with them
  rows = np.flatnonzero(grey.sum(axis=1) > n * side // 2)
  cols = np.flatnonzero(grey.sum(axis=0) > n * side // 2)
  assert rows.max() - rows.min() + 1 == n * side
  assert cols.max() - cols.min() + 1 == n * side
  # The tick marks touch the grid's outermost pixels: look inside them.
  inside = pixels[rows.min() + 1:rows.max(), cols.min() + 1:cols.max()]
  assert len(np.unique(inside)) == 2
  assert np.all(inside[1:] != inside[:-1]) and np.all(inside[:, 1:] != inside[:, :-1])
