r"""The one publish step: every generated block of README.md and docs/, from its source file.

  vae-jax publish                          # every block (python -m vae_jax.publish)
  vae-jax publish likelihood benchmark     # only these blocks
  vae-jax publish --check                  # write nothing; exit 1 naming each stale block
  vae-jax publish --study=runs/study       # import a finished study first, then publish
  vae-jax publish --sweep=runs/sweep       # the same for a sweep

``BLOCKS`` is the one table: (file, block name, source, renderer, the
command that writes the source). A block sits between ``<!-- NAME:begin -->``
and ``<!-- NAME:end -->`` (vae_jax/infra/blocks.py) and is rewritten whole
from its source; the renderers live next to their data (bench/, study/).
A source that is missing or was written by a ``--quick`` smoke run stops
publishing with one line naming the command that writes it, before any file
is written. Publishing twice gives byte-identical files.
"""

import collections
import os
import sys

from vae_jax.bench import (conv_lowerings, crash_campaign, fuzz_inputs, precision_quality,
                           publish_device, seeds_vmapped)
from vae_jax.bench import publish as bench_publish
from vae_jax.infra import blocks, errors, flags, paths
from vae_jax.analysis import real_reference
from vae_jax.study import likelihood, precision_study, statistics_doc
from vae_jax.study import publish as study_publish
from vae_jax.study import sweep_publish

ROOT = paths.REPO_ROOT

Block = collections.namedtuple('Block', 'doc name source render command')

_STUDY = 'vae-jax study --outdir=runs/study && vae-jax publish --study=runs/study'
_SWEEP = 'vae-jax sweep --outdir=runs/sweep && vae-jax publish --sweep=runs/sweep'
_BENCH = 'vae-jax bench --json=bench.json && vae-jax bench --publish=bench.json'
_COLLECT = 'vae-jax likelihood collect --workdir=W --experiment=NAME'
_PRECISION_STUDY = ('vae-jax study --outdir=runs/study_bf16 --compute_dtype=bfloat16 && python -m '
                    'vae_jax.study.precision_seeds --outdir=runs/precision_seeds && python -m '
                    'vae_jax.study.precision_study --bfloat16=runs/study_bf16/summary.json '
                    '--more_seeds=results/precision_seeds.json '
                    '--json=results/precision_study.json')

BLOCKS = (
    # README.md: a short headline, each line linking to its full table.
    Block('README.md', 'main-job', study_publish.SUMMARY, study_publish.main_job, _STUDY),
    Block('README.md', 'study-dtype', 'results/precision_study.json', precision_study.headline,
          _PRECISION_STUDY),
    Block('README.md', 'study-headline', study_publish.SUMMARY, study_publish.headline, _STUDY),
    Block('README.md', 'sweep-headline', sweep_publish.SUMMARY, sweep_publish.headline, _SWEEP),
    Block('README.md', 'likelihood-headline', 'results',
          lambda d: likelihood.headline(likelihood.render(d)), _COLLECT),
    Block('README.md', 'benchmark-headline', 'results/benchmark.json', bench_publish.headline,
          _BENCH),
    # docs/results/: the full tables.
    Block('docs/results/study.md', 'study', study_publish.SUMMARY,
          study_publish.results_section, _STUDY),
    Block('docs/results/sweep.md', 'sweep', sweep_publish.SUMMARY,
          sweep_publish.results_section, _SWEEP),
    Block('docs/results/likelihood.md', 'likelihood', 'results',
          lambda d: likelihood.table_markdown(likelihood.render(d)), _COLLECT),
    Block('docs/results/benchmark.md', 'benchmark', 'results/benchmark.json',
          bench_publish.detail, _BENCH),
    Block('docs/results/benchmark.md', 'profile', 'results/profile.json',
          bench_publish.profile_block,
          'vae-jax bench --publish=bench.json --profile=profile.json'),
    # docs/performance.md: the side measurements.
    Block('docs/performance.md', 'conv-lowerings', 'results/conv_lowerings.json',
          conv_lowerings.markdown,
          'python -m vae_jax.bench.conv_lowerings --json=results/conv_lowerings.json'),
    Block('docs/performance.md', 'seeds-vmapped', 'results/seeds_vmapped.json',
          seeds_vmapped.markdown,
          'python -m vae_jax.bench.seeds_vmapped --json=results/seeds_vmapped.json'),
    Block('docs/metrics.md', 'metrics-reference', 'results/metrics_reference.json',
          real_reference.markdown,
          'python -m vae_jax.analysis.real_reference --classifier_dir=runs/classifiers'),
    # Reads no source: the declarations and the summaries at power.PLAN_COMMIT.
    Block('docs/statistics.md', 'statistics', 'docs', statistics_doc.markdown,
          'vae-jax publish statistics'),
    Block('docs/reliability.md', 'crash_campaign', 'results/crash_campaign.json',
          crash_campaign.markdown,
          'python -m vae_jax.bench.crash_campaign --seed=0 --json=results/crash_campaign.json'),
    Block('docs/reliability.md', 'fuzz_inputs', 'results/fuzz_inputs.json', fuzz_inputs.markdown,
          'python -m vae_jax.bench.fuzz_inputs --seed=0 --json=results/fuzz_inputs.json'),
    Block('docs/performance.md', 'precision-quality', 'results/precision_quality.json',
          precision_quality.markdown,
          'python -m vae_jax.bench.precision_quality --json=results/precision_quality.json'),
    Block('docs/performance.md', 'precision-study', 'results/precision_study.json',
          precision_study.markdown, _PRECISION_STUDY),
    Block('docs/performance.md', 'device', 'results/gpu', publish_device.block,
          'bash vae_jax/bench/device_check.sh OUTDIR, its files copied into results/gpu/'),
)
NAMES = tuple(b.name for b in BLOCKS)
assert len(set(NAMES)) == len(NAMES), 'two blocks share a name'


def render(root=ROOT, names=()):
  """``{doc path: (old text, new text, [names of its blocks that changed])}``; writes nothing.

  Every source is read and every block rendered before anything is written, so
  a missing or --quick source leaves every file as it was.
  """
  unknown = [n for n in names if n not in NAMES]
  if unknown:
    raise blocks.PublishError(f'no block named {", ".join(unknown)}: name one of '
                              f'{", ".join(NAMES)}')
  docs = {}
  for b in BLOCKS:
    if names and b.name not in names:
      continue
    path = os.path.join(root, b.doc)
    if path not in docs:
      if not os.path.exists(path):
        raise blocks.PublishError(f'{path} does not exist: restore it from git (it holds '
                                  f'the {b.name} block)')
      with open(path) as f:
        text = f.read()
      docs[path] = (text, text, [])
    old, text, changed = docs[path]
    body = b.render(blocks.read_source(os.path.join(root, b.source), b.command))
    new = blocks.replace_block(text, b.name, body)
    if new != text:
      changed.append(b.name)
    docs[path] = (old, new, changed)
  return docs


def publish(root=ROOT, names=(), check=False):
  """Rewrites the blocks ``names`` (default: all); returns ``[(doc, block)]`` that changed.

  With ``check`` nothing is written.
  """
  docs = render(root, names)
  if not check:
    for path, (old, new, _) in docs.items():
      if new != old:
        with open(path, 'w') as f:
          f.write(new)
  return [(os.path.relpath(p, root), n) for p, (_, _, changed) in docs.items() for n in changed]


def main(argv=None, prog='python -m vae_jax.publish'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0],
                        [f'{prog}', f'{prog} --check', f'{prog} --study=runs/study'])
  parser.add_argument('names', nargs='*', help=f'blocks to publish (default: all of {NAMES})')
  parser.add_bool('check', False, 'write nothing; exit 1 naming each block that is out of date')
  parser.add_argument('--study', default=None, metavar='OUTDIR',
                      help='first import a finished study (figures, summary, report) into docs/')
  parser.add_argument('--sweep', default=None, metavar='OUTDIR',
                      help='first import a finished sweep into docs/')
  parser.add_bool('allow_incomplete', False,
                  'with --sweep: import a sweep with missing cells (its pages name them)')
  parser.add_bool('rejudge', False,
                  'first re-judge the published study\'s and sweep\'s claims from their '
                  'per-seed values under the current verdict rules (nothing retrained)')
  parser.add_argument('--root', default=ROOT, help='the checkout to write into')
  args = parser.parse_args(argv)
  with errors.user_errors():
    if args.check and (args.study or args.sweep):
      raise blocks.PublishError('--check writes nothing: drop --study/--sweep, or --check')
    if args.check and args.rejudge:
      raise blocks.PublishError('--check writes nothing: drop --rejudge, or --check')
    if args.study:
      print(study_publish.import_run(args.study, args.root))
    if args.sweep:
      print(sweep_publish.import_run(args.sweep, args.root, args.allow_incomplete))
    if args.rejudge:
      print(study_publish.rejudge(args.root))
      print(sweep_publish.rejudge(args.root))
    changed = publish(args.root, args.names, check=args.check)
  if args.check and changed:
    print('out of date (run `vae-jax publish`): '
          + ', '.join(f'{doc} [{name}]' for doc, name in changed), file=sys.stderr)
    return 1
  print(('up to date' if args.check else 'published')
        + f': {len(changed)} blocks changed' + ''.join(f'\n  {d} [{n}]' for d, n in changed))
  return 0


if __name__ == '__main__':
  sys.exit(main())
