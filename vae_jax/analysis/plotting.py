"""Figures of latent spaces and decodings, in one consistent style.

Every function takes plain arrays or a ``decode_fn(z [N, D]) -> images [N, H, W, 1]``
in [0, 1] and returns a matplotlib Figure; the caller saves it (``save``).
Titles say model, data set and seed; axes are labelled.
"""

import sys

import matplotlib

if 'IPython' not in sys.modules:
  matplotlib.use('Agg')  # files only on servers and CI; notebooks keep their inline backend

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.special import ndtri  # noqa: E402

from vae_jax.core import data as data_lib  # noqa: E402

CMAP = 'tab10'
DPI = 80

plt.rcParams.update({'font.size': 9, 'axes.titlesize': 10, 'figure.dpi': DPI})


def save(fig, path):
  """Writes ``fig`` as a PNG and closes it."""
  fig.savefig(path, dpi=DPI, bbox_inches='tight')
  plt.close(fig)


def tile(images, cols):
  """``[N, H, W, C]`` -> one image ``[rows*H, cols*W]`` for C = 1 (grey, drawn
  with a colour map) or ``[rows*H, cols*W, C]`` (colour); missing cells blank."""
  images = np.asarray(images)
  if images.shape[-1] == 1:
    images = images[..., 0]
  n, h, w = images.shape[:3]
  rows = -(-n // cols)
  out = np.ones((rows * h, cols * w, *images.shape[3:]), images.dtype)
  for i, img in enumerate(images):
    r, c = divmod(i, cols)
    out[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
  return out


def _class_names(dataset, labels):
  """The data set's class names (vae_jax.core.data), else the labels as numbers."""
  if dataset in data_lib.DATASETS:
    return data_lib.info(dataset).class_names
  return tuple(str(i) for i in range(int(np.max(labels)) + 1))


def scatter_codes(ax, codes, labels, dataset, title=None, legend=True, size=2):
  """2-D codes coloured by class, with a legend of class names."""
  codes = np.asarray(codes)
  names = _class_names(dataset, labels)
  sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap=CMAP, vmin=-0.5,
                  vmax=len(names) - 0.5, s=size, alpha=0.7, linewidths=0)
  ax.set_xlabel('z[0]')
  ax.set_ylabel('z[1]')
  if title:
    ax.set_title(title)
  if legend:
    handles = [plt.Line2D([], [], marker='o', ls='', color=sc.cmap(sc.norm(i)),
                          label=name) for i, name in enumerate(names)]
    ax.legend(handles=handles, loc='center left', bbox_to_anchor=(1.0, 0.5),
              fontsize=7, frameon=False, markerscale=0.8)
  return sc


def projection_2d(codes):
  """``z [N, D] -> [N, 2]`` for drawing codes: the identity for 2-D codes, the
  projection onto the two main directions (PCA) of ``codes`` for more."""
  codes = np.asarray(codes, np.float64)
  if codes.shape[1] == 1:  # drawn on the horizontal axis
    return lambda z: np.concatenate([np.asarray(z), np.zeros_like(np.asarray(z))], axis=1)
  if codes.shape[1] == 2:
    return np.asarray
  centre = codes.mean(0)
  _, _, vt = np.linalg.svd(codes - centre, full_matrices=False)
  return lambda z: (np.asarray(z, np.float64) - centre) @ vt[:2].T


def latent_figure(codes, labels, dataset, title):
  fig, ax = plt.subplots(figsize=(6, 5))
  scatter_codes(ax, codes, labels, dataset, title)
  return fig


def grid_points(n, spacing, center=(0.0, 0.0), scale=(1.0, 1.0), limit=4.0):
  """An ``n x n`` grid of 2-D codes, row-major from the top (high z[1]) down.

  ``spacing='linear'``: evenly over [-limit, limit]; ``'gaussian'``: through
  the inverse normal CDF of evenly spaced quantiles in (0, 1), so each cell
  holds equal prior mass. ``center``/``scale`` map the unit grid onto a
  model's code distribution (the AE has no N(0, I) prior).
  """
  if spacing == 'linear':
    axis = np.linspace(-limit, limit, n)
  elif spacing == 'gaussian':
    axis = np.asarray(ndtri(jnp.linspace(0.5 / n, 1 - 0.5 / n, n)))
  else:
    raise ValueError(f"unknown spacing {spacing!r}: use 'linear' or 'gaussian'")
  xs = center[0] + scale[0] * axis
  ys = center[1] + scale[1] * axis[::-1]
  return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2), xs, ys


def manifold_figure(decode_fn, codes, labels, dataset, title, n=30,
                    center=(0.0, 0.0), scale=(1.0, 1.0)):
  """Scatter of codes beside two decoded n x n grids (linear and Gaussian spacing)."""
  fig, axes = plt.subplots(1, 3, figsize=(18, 5.2),
                           gridspec_kw={'width_ratios': [1.25, 1, 1], 'wspace': 0.5})
  scatter_codes(axes[0], codes, labels, dataset, 'codes of the test set')
  for ax, spacing in zip(axes[1:], ('linear', 'gaussian')):
    z, xs, ys = grid_points(n, spacing, center, scale)
    canvas = tile(decode_fn(z), n)
    _draw_grid(ax, canvas, n, xs, ys)
    label = ('linear over ±4' if spacing == 'linear'
             else 'inverse Gaussian CDF')
    ax.set_title(f'decoded {n}x{n} grid, {label}')
    if spacing == 'linear':
      lo = (center[0] - 4 * scale[0], center[1] - 4 * scale[1])
      hi = (center[0] + 4 * scale[0], center[1] + 4 * scale[1])
      axes[0].add_patch(plt.Rectangle(lo, hi[0] - lo[0], hi[1] - lo[1], fill=False,
                                      ls='--', lw=0.8, color='k'))
  fig.suptitle(title)
  return fig


def grid_figure(decode_fn, title, n=30, spacing='linear', center=(0.0, 0.0),
                scale=(1.0, 1.0), margin_px=70):
  """One decoded ``n x n`` grid (:func:`grid_points`) at one screen pixel per image pixel.

  The figure is sized from the decoded images, so that saved at :data:`DPI`
  the grid spans exactly ``n * H x n * W`` pixels (840 x 840 for 30 x 30 MNIST
  digits) and every decoded image can be read; ``margin_px`` leaves room for
  the axis labels and title.
  """
  z, xs, ys = grid_points(n, spacing, center, scale)
  canvas = tile(decode_fn(z), n)
  height, width = canvas.shape[:2]
  fig = plt.figure(figsize=((width + 2 * margin_px) / DPI, (height + 2 * margin_px) / DPI))
  ax = fig.add_axes([margin_px / (width + 2 * margin_px), margin_px / (height + 2 * margin_px),
                     width / (width + 2 * margin_px), height / (height + 2 * margin_px)])
  _draw_grid(ax, canvas, n, xs, ys, interpolation='nearest', aspect='auto')
  ax.spines[:].set_visible(False)   # a frame would cover the outer pixels
  ax.set_title(title)
  return fig


def _draw_grid(ax, canvas, n, xs, ys, **imshow):
  """The tiled decodes of an ``n x n`` grid on ``ax``, ticks at their codes."""
  ax.imshow(canvas, cmap='Greys_r', extent=(0, n, 0, n), vmin=0, vmax=1, **imshow)
  ticks = np.arange(0, n, max(1, n // 6)) + 0.5
  idx = ticks.astype(int)
  ax.set_xticks(ticks, [f'{xs[i]:.1f}' for i in idx])
  ax.set_yticks(ticks, [f'{ys[::-1][i]:.1f}' for i in idx])
  ax.set_xlabel('z[0]')
  ax.set_ylabel('z[1]')


def interpolate(z0, z1, steps):
  """``steps`` codes on the straight line from ``z0`` to ``z1`` (both ends included)."""
  t = np.linspace(0.0, 1.0, steps)[:, None]
  return (1 - t) * np.asarray(z0)[None] + t * np.asarray(z1)[None]


def walk_figure(panels, dataset, title, steps=12):
  """Per model: scatter with the walk drawn on it and the decoded strip below.

  ``panels``: list of dicts with ``name``, ``codes``, ``labels``, ``z0``,
  ``z1``, ``decode_fn`` and optionally ``project`` (``[N, D] -> [N, 2]``, e.g.
  :func:`projection_2d`) to draw codes of more than two dimensions; the walk
  is decoded in the full space either way.
  """
  fig = plt.figure(figsize=(6.2 * len(panels), 7))
  grid = fig.add_gridspec(2, len(panels), height_ratios=[5, 1])
  for i, p in enumerate(panels):
    project = p.get('project', np.asarray)
    ax = fig.add_subplot(grid[0, i])
    scatter_codes(ax, project(p['codes']), p['labels'], dataset, p['name'],
                  legend=(i == len(panels) - 1))
    path = interpolate(p['z0'], p['z1'], steps)
    shown = project(path)
    ax.plot(shown[:, 0], shown[:, 1], 'k.-', lw=1.2, ms=4)
    ax.plot(*shown[0], 'k^', ms=8)
    ax.plot(*shown[-1], 'ks', ms=8)
    strip = fig.add_subplot(grid[1, i])
    strip.imshow(tile(p['decode_fn'](path), steps), cmap='Greys_r', vmin=0, vmax=1)
    strip.set_xticks([])
    strip.set_yticks([])
    strip.set_xlabel('decoded along the walk: start (triangle) → end (square)')
  fig.suptitle(title)
  return fig


def posterior_cloud_figure(means, labels, sample_means, sample_logvars, key_samples,
                           dataset, title):
  """VAE means of the test set with many draws from q(z|x) for a few inputs.

  ``key_samples``: ``[K, S, 2]`` standard-normal draws for the S chosen inputs.
  """
  fig, ax = plt.subplots(figsize=(6.5, 5.5))
  scatter_codes(ax, means, labels, dataset, title, size=1.5)
  sigma = np.exp(0.5 * np.asarray(sample_logvars))
  draws = np.asarray(sample_means)[None] + sigma[None] * np.asarray(key_samples)
  for s in range(draws.shape[1]):
    ax.scatter(draws[:, s, 0], draws[:, s, 1], s=3, color='k', alpha=0.25,
               linewidths=0)
    ax.plot(*np.asarray(sample_means)[s], 'r+', ms=10, mew=2)
  ax.set_title(f'{title}\nblack: samples of q(z|x) for {draws.shape[1]} test inputs '
               '(red +: their means)')
  return fig


def image_rows_figure(rows, row_names, title, cols=None):
  """Rows of images (each ``[N, H, W, 1]``) with a name at the left of each row."""
  cols = cols or len(rows[0])
  fig, axes = plt.subplots(len(rows), 1, figsize=(cols * 0.7 + 1.6, len(rows) * 0.85 + 0.6))
  axes = np.atleast_1d(axes)
  for ax, images, name in zip(axes, rows, row_names):
    ax.imshow(tile(images[:cols], cols), cmap='Greys_r', vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, ha='right', va='center', fontsize=8)
  fig.suptitle(title)
  return fig


def blend_figure(panels, title, steps=9):
  """Two inputs, their decoded interpolation and midpoint, one row per model.

  ``panels``: list of dicts with ``name``, ``x0``, ``x1`` (``[H, W, 1]``),
  ``z0``, ``z1`` and ``decode_fn``.
  """
  rows, names = [], []
  for p in panels:
    decoded = p['decode_fn'](interpolate(p['z0'], p['z1'], steps))
    rows.append(np.concatenate([p['x0'][None], decoded, p['x1'][None]]))
    names.append(f"{p['name']}\ninput A | A→B | input B")
  fig = image_rows_figure(rows, names, title, cols=steps + 2)
  fig.axes[0].set_title(f'midpoint = column {steps // 2 + 2} (z = (z_A + z_B) / 2)',
                        fontsize=8)
  return fig
