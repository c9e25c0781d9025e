"""The sweep's figures, drawn from summary.json's per-cell numbers, captions generated from them.

Each ``fig_*`` function draws from the summary (and, for the sample grids, the
decoded samples the cells saved), writes its PNGs and returns ``{figure:
facts}``; :func:`captions` turns the facts into text, so no statement about a
figure is typed by hand (as in study_figures.py). Cells not finished yet are
left out of a figure and the caption counts what it shows.
"""

import os

import numpy as np
from scipy import stats

from vae_jax.core import data

from vae_jax.study import sweep_catalog as sweep_models
from vae_jax.analysis import metric_registry as registry
from vae_jax.analysis import plotting, samplers
from vae_jax.analysis import verdicts

plt = plotting.plt
MARKERS = {2: 'o', 8: 's', 32: '^'}
SHORT_LABEL = {'ae': 'AE', 'beta0': 'β=0', 'beta0p25': 'β=.25', 'beta1': 'β=1', 'beta4': 'β=4',
               'freebits': 'fb'}
# Figure -> (metric key, what the colour shows); bright = better (the registry's direction).
RD_COLOURS = {
    'sweep_rd_completeness': ('prior/balanced_confident_share', 'share of N(0, I) samples the '
                              'classifier calls confidently, class-balanced (completeness)'),
    'sweep_rd_continuity': ('path_confident_share', 'share of class-pair walk images the '
                            'classifier calls confidently (continuity)'),
}
VS_LATENT = tuple((key, f'{registry.header(key)} ({what})') for key, what in (
    ('path_jump_ratio', 'continuity'), ('path_confident_share', 'continuity'),
    ('prior/balanced_confident_share', 'completeness'), ('prior/hole_share', 'completeness')))


def colour_map(key):
  return 'viridis_r' if registry.direction(key) == registry.LESS else 'viridis'


def _mean(cell, key):
  m = cell['metrics'].get(key)
  return None if m is None else m['mean']


def _marker(z):
  return MARKERS.get(z, 'D')


def _rd_point(ax, x, c, key, norm, cmap):
  y = _mean(c, 'recon')
  ax.scatter([x], [y], c=[_mean(c, key)], cmap=cmap, norm=norm, s=60,
             marker=_marker(c['latent_dim']), edgecolors='k', linewidths=0.5)
  ax.annotate(SHORT_LABEL[c['variant']], (x, y), fontsize=7, xytext=(4, 3),
              textcoords='offset points')


def fig_rate_distortion(s, figdir):
  """Rate against distortion, every cell, coloured by completeness / continuity.

  Each data set gets a wide panel for the VAEs (log rate) and a narrow one,
  sharing its distortion axis, for the classic AEs: a deterministic code has
  no finite rate to place them at.
  """
  facts = {}
  datasets = s['grid']['datasets']
  for name, (key, what) in RD_COLOURS.items():
    cmap = colour_map(key)
    fig = plt.figure(figsize=(6.5 * len(datasets), 4.2))
    gs = fig.add_gridspec(1, 2 * len(datasets), width_ratios=[5, 1] * len(datasets),
                          wspace=0.05)
    per_data, axes = {}, []
    values = [_mean(c, key) for c in s['cells'].values() if _mean(c, key) is not None]
    finite = [v for v in values if np.isfinite(v)]
    norm = plt.Normalize(min(finite, default=0), max(finite, default=1))
    for i, d in enumerate(datasets):
      ax = fig.add_subplot(gs[0, 2 * i])
      ax_ae = fig.add_subplot(gs[0, 2 * i + 1], sharey=ax)
      axes += [ax, ax_ae]
      cells = [(n, c) for n, c in s['cells'].items() if c['dataset'] == d
               and _mean(c, key) is not None]
      vae = [(n, c) for n, c in cells if c['variant'] != 'ae' and _mean(c, 'kl') is not None]
      ae = [(n, c) for n, c in cells if c['variant'] == 'ae']
      for _, c in vae:
        _rd_point(ax, _mean(c, 'kl'), c, key, norm, cmap)
      for _, c in ae:
        _rd_point(ax_ae, 0.0, c, key, norm, cmap)
      ax.set_xscale('log')
      ax.xaxis.set_minor_formatter(plt.NullFormatter())  # minor labels collide
      ax.set_xlabel('rate: test KL (nats, log scale)')
      ax.set_ylabel('distortion: test reconstruction (nats)')
      ax.set_title(f'{data.title(d)}: VAEs')
      ax_ae.set_title('classic AE', fontsize=8)
      ax_ae.set_xticks([0.0])
      ax_ae.set_xticklabels(['no finite\nrate'], fontsize=7)
      ax_ae.set_xlim(-1, 1.5)
      ax_ae.tick_params(labelleft=False)
      ax.legend(handles=[plt.Line2D([], [], marker=_marker(z), ls='', color='0.5',
                                    label=f'{z}-D') for z in s['grid']['latent_dims']],
                fontsize=7)
      rates = [_mean(c, 'kl') for _, c in vae]
      rho = (float(stats.spearmanr(rates, [_mean(c, key) for _, c in vae])[0])
             if len(vae) >= 3 else None)
      points = [{'cell': n, 'rate': _mean(c, 'kl') if c['variant'] != 'ae' else None,
                 'distortion': _mean(c, 'recon'), 'value': _mean(c, key)} for n, c in cells]
      ranked = sorted((p for p in points if np.isfinite(p['value'])), key=lambda p: p['value'])
      per_data[d] = {'points': points, 'spearman_rate': rho, 'n_vae': len(vae),
                     'lowest': ranked[0] if ranked else None,
                     'highest': ranked[-1] if ranked else None}
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=key)
    fig.suptitle(f'Rate–distortion plane, coloured by {key}')
    plotting.save(fig, os.path.join(figdir, f'{name}.png'))
    facts[name] = {'key': key, 'what': what, 'per_dataset': per_data}
  return facts


def _sample_cells(s):
  dims = s['grid']['latent_dims']
  return [(v, z) for z in sorted({min(dims), max(dims)}) for v in ('ae', 'beta1')]


def fig_samples(s, samples, figdir):
  """Decoded samples per sampler: classic AE vs β = 1 VAE, smallest and largest latent size."""
  facts = {}
  for d in s['grid']['datasets']:
    rows = [(v, z) for v, z in _sample_cells(s)
            if sweep_models.cell_name(d, z, v) in samples]
    if not rows:
      continue
    fig, axes = plt.subplots(len(rows), len(samplers.SAMPLERS), squeeze=False,
                             figsize=(2.3 * len(samplers.SAMPLERS), 2.5 * len(rows)))
    shown = {}
    for r, (v, z) in enumerate(rows):
      name = sweep_models.cell_name(d, z, v)
      cell = s['cells'].get(name, {'metrics': {}})
      for col, sampler in enumerate(samplers.SAMPLERS):
        ax = axes[r, col]
        images = samples[name][sampler][:16].astype(np.float32)[..., None] / 255
        ax.imshow(plotting.tile(images, 4), cmap='Greys_r', vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        fd = _mean(cell, f'{sampler}/frechet_distance')
        shown[f'{name}@{sampler}'] = {
            k: _mean(cell, f'{sampler}/{k}') for k in ('frechet_distance', 'precision',
                                                       'coverage', 'balanced_confident_share')}
        ax.set_title(f'{sampler}: FD {fd:.0f}' if fd is not None else sampler, fontsize=8)
        if col == 0:
          ax.set_ylabel(f'{SHORT_LABEL[v]}, {z}-D', fontsize=9)
    fig.suptitle(f'{data.title(d)}: decoded samples per sampler (first seed)')
    fig_name = f'sweep_samples_{d}'
    plotting.save(fig, os.path.join(figdir, f'{fig_name}.png'))
    facts[fig_name] = {'dataset': d, 'shown': shown}
  return facts


def fig_vs_latent(s, figdir):
  """Continuity and completeness against latent size, one line per objective (95 % CI bars)."""
  datasets, dims = s['grid']['datasets'], s['grid']['latent_dims']
  fig, axes = plt.subplots(len(VS_LATENT), len(datasets), squeeze=False,
                           figsize=(5 * len(datasets), 2.8 * len(VS_LATENT)))
  facts = {}
  for col, d in enumerate(datasets):
    facts[d] = {}
    for row, (key, label) in enumerate(VS_LATENT):
      ax = axes[row, col]
      for v in s['grid']['variants']:
        xs, ys, err = [], [], []
        for z in dims:
          cell = s['cells'].get(sweep_models.cell_name(d, z, v))
          if cell is None or key not in cell['metrics']:
            continue
          mean, low, high = verdicts.t_interval(cell['metrics'][key]['values'])
          xs.append(z)
          ys.append(mean)
          err.append(0.0 if not np.isfinite(high) else high - mean)
        if xs:
          ax.errorbar(xs, ys, yerr=err, marker='o', ms=4, capsize=2, label=SHORT_LABEL[v])
          facts[d].setdefault(v, {})[key] = dict(zip(map(str, xs), ys))
      ax.set_xscale('log', base=2)
      ax.set_xticks(dims)
      ax.set_xticklabels([str(z) for z in dims])
      ax.set_ylabel(label, fontsize=8)
      if row == 0:
        ax.set_title(data.title(d))
      if row == len(VS_LATENT) - 1:
        ax.set_xlabel('latent size')
  axes[0, -1].legend(fontsize=7, ncol=2)
  fig.suptitle('Continuity and completeness against latent size (mean, 95 % interval over seeds)')
  plotting.save(fig, os.path.join(figdir, 'sweep_vs_latent.png'))
  return {'sweep_vs_latent': {'per_dataset': facts, 'dims': list(dims)}}


def draw_all(s, samples, figdir):
  facts = {}
  facts.update(fig_rate_distortion(s, figdir))
  facts.update(fig_samples(s, samples, figdir))
  facts.update(fig_vs_latent(s, figdir))
  return facts


def _g(x, digits=3):
  return '–' if x is None else f'{x:.{digits}g}'


def _rd_caption(f):
  parts = []
  for d, p in f['per_dataset'].items():
    if not p['points']:
      continue
    rho = ('' if p['spearman_rate'] is None else
           f"; Spearman ρ between rate and {f['key']} over its {p['n_vae']} VAE cells: "
           f"{p['spearman_rate']:.2f}")
    parts.append(f"{data.title(d)}: highest {p['highest']['cell']} ({_g(p['highest']['value'])}), "
                 f"lowest {p['lowest']['cell']} ({_g(p['lowest']['value'])}){rho}")
  return (f"Every finished cell (mean over its seeds): test rate (KL, nats, log scale) against "
          f"distortion (reconstruction, nats), coloured by the {f['what']}; marker = latent "
          f"size; classic AEs in the narrow panel beside (a deterministic code has no finite "
          f"rate). " + '. '.join(parts) + '.')


def _samples_caption(f):
  parts = [f"{cell.replace('@', ' from ')}: FD {_g(v['frechet_distance'], 4)}, precision "
           f"{_g(v['precision'], 2)}, coverage {_g(v['coverage'], 2)}"
           for cell, v in f['shown'].items()]
  return (f"{data.title(f['dataset'])}: 16 decoded samples from each sampler (N(0, I), a "
          'Gaussian fitted to the codes, a 10-component GMM fitted to the codes) for the '
          'classic AE and the β = 1 VAE at the smallest and largest latent size, first seed. '
          'Mean over seeds: ' + '; '.join(parts) + '.')


def _vs_latent_caption(f):
  lo, hi = str(min(f['dims'])), str(max(f['dims']))
  parts = []
  for d, by_variant in f['per_dataset'].items():
    for v in ('ae', 'beta1'):
      vals = by_variant.get(v, {})
      text = [f"{key} {_g(vals[key].get(lo))} → {_g(vals[key].get(hi))}"
              for key, _ in VS_LATENT if key in vals]
      if text:
        parts.append(f"{data.title(d)} {SHORT_LABEL[v]}: " + ', '.join(text))
  return (f"Continuity (evenness along class-pair walks, walk images called confidently) and "
          f"completeness (N(0, I) samples called confidently, class-balanced; samples where the "
          f"aggregate posterior is thin) against latent size, one line per objective, mean and "
          f"95 % interval over seeds. From {lo}-D to {hi}-D: " + '; '.join(parts) + '.')


def captions(s):
  """``{figure: caption}`` from ``s['figures_facts']``."""
  out = {}
  for name, f in s['figures_facts'].items():
    if name.startswith('sweep_rd_'):
      out[name] = _rd_caption(f)
    elif name.startswith('sweep_samples_'):
      out[name] = _samples_caption(f)
    elif name == 'sweep_vs_latent':
      out[name] = _vs_latent_caption(f)
  return out
