"""``sweep.py --publish``: a finished sweep into docs/ and README.md, all generated.

docs/sweep_report.md is the sweep's REPORT.md (figure links relative to
docs/), docs/sweep_summary.json its summary.json, docs/figures/sweep_*.png its
figures, and the README section between the ``sweep:begin`` / ``sweep:end``
markers is regenerated from the summary (as publish_study.py does for the
study). A --quick sweep is refused; one with missing cells only with
``allow_incomplete``, and then every page says which cells are missing.
"""

import json
import os
import shutil

from vae_jax.study import sweep_report
from vae_jax.infra import errors

BEGIN, END = '<!-- sweep:begin -->', '<!-- sweep:end -->'


class PublishError(errors.UserError, RuntimeError):
  """The sweep cannot be published as asked; the message says why."""


def readme_section(s):
  lines = [BEGIN, '',
           'Generated from the sweep\'s summary.json by `python -m vae_jax.study.sweep '
           '--outdir=runs/sweep --publish` (docs/sweep.md describes the sweep). The whole '
           'report, with every cell and sampler, is [docs/sweep_report.md](docs/sweep_report.md); '
           'the numbers are in [docs/sweep_summary.json](docs/sweep_summary.json).', '']
  lines += sweep_report.status_lines(s) + ['']
  lines += sweep_report.findings_markdown(s, '###')
  lines += ['#### Figures', '']
  for name in s['figures']:
    lines += [f"**{name}**: {s['captions'][name]}", '', f'![{name}](docs/figures/{name}.png)',
              '']
  lines.append(END)
  return '\n'.join(lines)


def replace_section(text, section):
  """``text`` with the marked section replaced (appended at the end when it has none)."""
  if BEGIN in text and END in text:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + section + text[end:]
  return text.rstrip('\n') + '\n\n## The latent-size × β sweep\n\n' + section + '\n'


def publish(outdir, root, allow_incomplete=False):
  """Copies figures, report and summary into ``root``; returns one line saying what it did."""
  path = os.path.join(outdir, 'summary.json')
  if not os.path.exists(path):
    raise PublishError(f'no {path}: run vae_jax/study/sweep.py --outdir={outdir} first')
  with open(path) as f:
    s = json.load(f)
  if s['quick']:
    raise PublishError(f'{outdir} is a --quick sweep: publish a full run')
  if s['missing'] and not allow_incomplete:
    raise PublishError(f"{len(s['missing'])} of {s['expected_cells']} cells are missing "
                       f"({', '.join(s['missing'][:5])}...): finish the sweep, or pass "
                       '--allow_incomplete to publish a report that names them')
  figdir = os.path.join(root, 'docs', 'figures')
  os.makedirs(figdir, exist_ok=True)
  for name in s['figures']:
    shutil.copy(os.path.join(outdir, 'figures', f'{name}.png'), figdir)
  shutil.copy(path, os.path.join(root, 'docs', 'sweep_summary.json'))
  with open(os.path.join(root, 'docs', 'sweep_report.md'), 'w') as f:
    f.write(sweep_report.report_markdown(s, 'figures'))
  readme = os.path.join(root, 'README.md')
  with open(readme) as f:
    text = f.read()
  with open(readme, 'w') as f:
    f.write(replace_section(text, readme_section(s)))
  done = s['expected_cells'] - len(s['missing'])
  return (f"published {len(s['figures'])} figures, docs/sweep_report.md and the README section "
          f"({done} of {s['expected_cells']} cells)")
