"""A finished sweep into the checkout, and the sweep's generated blocks.

  vae-jax sweep --outdir=runs/sweep
  vae-jax publish --sweep=runs/sweep     # import_run below, then every block

``import_run`` copies the sweep's summary.json to docs/sweep_summary.json,
its REPORT.md to docs/sweep_report.md (figure links relative to docs/) and
its figures to docs/figures/sweep_*.png. The blocks rendered from
docs/sweep_summary.json (``results_section``: docs/results/sweep.md;
``headline``: README.md) are written by the one publish step,
vae_jax/publish.py. A --quick sweep is refused; one with missing cells only
with ``allow_incomplete``, and then every page says which cells are missing.
"""

import json
import os
import shutil

from vae_jax.infra import blocks
from vae_jax.study import sweep_report

SUMMARY = os.path.join('docs', 'sweep_summary.json')   # the blocks' source, in the checkout
WRITTEN_BY = 'vae-jax sweep --outdir=runs/sweep && vae-jax publish --sweep=runs/sweep'


class PublishError(blocks.PublishError):
  """The sweep cannot be published as asked; the message says why."""


def headline(s):
  """README: question 1's verdict counts, linking to the full tables."""
  judged = [c for c in s['claims'] if c['group'] == 'ghosh' and c['metric'] == 'frechet_distance']
  count = {v: sum(c['verdict'] == v for c in judged) for v in sweep_report.MARK}
  done = s['expected_cells'] - len(s['missing'])
  return (f"- **The latent-size × β sweep** ({done} of {s['expected_cells']} cells): a classic "
          'AE sampled from a GMM fitted to its codes against the β = 1 VAE sampled from N(0, I), '
          f"by Fréchet distance over {len(judged)} (data set, latent size) pairs: the AE + GMM is "
          f"better in {count['supported']}, worse in {count['contradicted']}, not "
          f"distinguishable in {count['inconclusive']} ([findings](docs/results/sweep.md)).")


def results_section(s, figures='../figures'):
  """docs/results/sweep.md: the findings, the interval matrices and the figures."""
  lines = [f'Generated from docs/sweep_summary.json (`{WRITTEN_BY}`; '
           '[docs/sweep.md](../sweep.md) describes the sweep). The whole report, with every '
           'cell and sampler, is [docs/sweep_report.md](../sweep_report.md).', '']
  lines += sweep_report.status_lines(s) + ['']
  lines += sweep_report.findings_markdown(s, '##')
  lines += ['## Figures', '']
  for name in s['figures']:
    lines += [f"**{name}**: {s['captions'][name]}", '', f'![{name}]({figures}/{name}.png)', '']
  return '\n'.join(lines)


def import_run(outdir, root, allow_incomplete=False):
  """Copies figures, report and summary into ``root``; returns one line saying what it did."""
  path = os.path.join(outdir, 'summary.json')
  try:
    s = blocks.read_source(path, f'vae-jax sweep --outdir={outdir}')
  except blocks.PublishError as e:
    raise PublishError(str(e)) from None
  if s['missing'] and not allow_incomplete:
    raise PublishError(f"{len(s['missing'])} of {s['expected_cells']} cells are missing "
                       f"({', '.join(s['missing'][:5])}...): finish the sweep, or pass "
                       '--allow_incomplete to publish a report that names them')
  figdir = os.path.join(root, 'docs', 'figures')
  os.makedirs(figdir, exist_ok=True)
  for name in s['figures']:
    shutil.copy(os.path.join(outdir, 'figures', f'{name}.png'), figdir)
  shutil.copy(path, os.path.join(root, SUMMARY))
  with open(os.path.join(root, 'docs', 'sweep_report.md'), 'w') as f:
    f.write(sweep_report.report_markdown(s, 'figures'))
  done = s['expected_cells'] - len(s['missing'])
  return (f"imported {len(s['figures'])} figures, docs/sweep_report.md and "
          f"docs/sweep_summary.json ({done} of {s['expected_cells']} cells)")


def rejudge(root):
  """Re-judges the published sweep's claims from its per-seed values under today's rules.

  Like study/publish.py's ``rejudge``: docs/sweep_summary.json keeps every
  measured value and gets the claims and β onsets of the current code, marked
  ``rejudged``; docs/sweep_report.md follows. Nothing is retrained, and the
  captions stay those of the figures as drawn (from the run's own facts).
  """
  from vae_jax.infra import workdir as workdir_lib
  path = os.path.join(root, SUMMARY)
  s = blocks.read_source(path, 'vae-jax sweep --outdir=runs/sweep')
  s['claims'], s['onsets'] = sweep_report.judge(s['per_seed'], s['grid'])
  s['rejudged'] = ('the question families of vae_jax/study/sweep_report.py applied to the '
                   'per-seed values of this run')
  workdir_lib.atomic_write_text(path, json.dumps(s, indent=2, sort_keys=True))
  workdir_lib.atomic_write_text(os.path.join(root, 'docs', 'sweep_report.md'),
                                sweep_report.report_markdown(s, 'figures'))
  return f're-judged the sweep\'s {len(s["claims"])} claims'


def publish(outdir, root, allow_incomplete=False):
  """``sweep --publish``: the import step; the blocks are ``vae-jax publish``'s."""
  return (import_run(outdir, root, allow_incomplete)
          + '; `vae-jax publish` regenerates README.md and docs/results/sweep.md from them')
