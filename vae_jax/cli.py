"""The ``vae-jax`` command: one subcommand per entry point of the library.

``vae-jax <subcommand> [flags]`` calls that module's ``main(argv, prog)``
(``python -m <module>`` takes the same flags); ``vae-jax <subcommand> --help``
shows its flags and an example. Every command line is parsed by argparse
through vae_jax.infra.flags, config files and ``--config.FIELD=VALUE`` by
vae_jax.core.config.
"""

import importlib
import os
import sys

from vae_jax.infra import flags

EXAMPLES = """examples:
  vae-jax train --config=experiments/configs/mnist_vae_2d.py --workdir=runs/mnist_vae_2d
  vae-jax evaluate --workdir=runs/mnist_vae_2d --iwae_samples=5000
  vae-jax plot --workdir=runs/mnist_vae_2d --outdir=runs/mnist_vae_2d/figures
  vae-jax latent-report --workdir=runs/mnist_vae_2d --classifier=runs/classifier_mnist.npz
  vae-jax study --outdir=runs/study --nocheck_gates
  vae-jax sweep --outdir=runs/sweep
  vae-jax bench --json=bench.json
  vae-jax likelihood publish
"""

# name -> (module whose main(argv, prog) runs it, or None: a function below; help line)
SUBCOMMANDS = {
    'train': ('vae_jax.main', 'train a config in a workdir (resumes if rerun)'),
    'evaluate': ('vae_jax.core.evaluate',
                 'ELBO and importance-weighted log-likelihood of a trained workdir'),
    'plot': (None, 'figures of a trained workdir: latent scatter, manifold, samples, '
                   'reconstructions'),
    'latent-report': (None, 'continuity, completeness and sample quality of a trained '
                            'workdir, as JSON, markdown and figures'),
    'study': ('vae_jax.study.run',
              'the seed study: every figure of the article and the metrics table'),
    'reproduce': ('vae_jax.study.run', 'the same as study (its older name)'),
    'sweep': ('vae_jax.study.sweep', 'latent size x beta x data set x seed, sharded'),
    'bench': ('vae_jax.bench.benchmark',
              'throughput and the roofline on this machine (--publish: write its tables)'),
    'likelihood': ('vae_jax.study.likelihood',
                   'collect a headline run into results/, or publish the likelihood table'),
    'publish': ('vae_jax.publish', 'regenerate every generated block of README.md and docs/'),
    'notebooks': ('vae_jax.notebooks', 'execute the notebooks and store their outputs'),
}


def _plot_parser(prog):
  p = flags.Parser(prog, SUBCOMMANDS['plot'][1],
                   'vae-jax plot --workdir=runs/vae --outdir=runs/vae/figures')
  p.add_argument('--workdir', required=True, help='a trained run directory')
  p.add_argument('--outdir', default=None, help='where PNGs go (default: WORKDIR/figures)')
  p.add_argument('--count', type=int, default=16, help='images per row of samples')
  return p


def plot(argv, prog='vae-jax plot'):
  """Writes latent.png, manifold.png (2-D codes), samples.png, reconstructions.png."""
  args = _plot_parser(prog).parse_args(argv)
  from vae_jax.infra import errors
  with errors.user_errors():
    import jax
    import numpy as np
    from vae_jax.analysis import plotting
    from vae_jax.core import data, experiment, latent

    # Restores the parameters only: no training data, no training step compiled.
    config, model, params, _ = experiment.restore(args.workdir)
    test_images, test_labels = data.load_split(config.data, 'test')
    outdir = args.outdir or os.path.join(args.workdir, 'figures')
    os.makedirs(outdir, exist_ok=True)
    dataset = config.data.name
    codes, _ = latent.encode(model, params, test_images)
    name = f'{config.model.kind} ({config.model.family}), {dataset}, seed {config.seed}'
    shown = plotting.projection_2d(codes)(codes)  # PCA for more than 2 dimensions
    plotting.save(plotting.latent_figure(shown, test_labels, dataset,
                                         f'test codes{" (PCA)" if codes.shape[1] > 2 else ""}: {name}'),
                  os.path.join(outdir, 'latent.png'))
    if codes.shape[1] == 2:
      center, scale = (0.0, 0.0), (1.0, 1.0)
      if config.model.kind == 'autoencoder':  # no N(0, I) prior: use the codes' spread
        center, scale = tuple(codes.mean(0)), tuple(codes.std(0))
      plotting.save(plotting.manifold_figure(lambda z: latent.decode(model, params, z),
                                             codes, test_labels, dataset, name,
                                             center=center, scale=scale),
                    os.path.join(outdir, 'manifold.png'))
    mean, std = (0.0, 1.0) if config.model.kind == 'vae' else (codes.mean(0), codes.std(0))
    z = mean + std * np.asarray(jax.random.normal(jax.random.key(config.seed),
                                                  (args.count, codes.shape[1])))
    x = test_images[:args.count]
    plotting.save(plotting.image_rows_figure(
        [latent.decode(model, params, z)], ['prior samples'], f'samples: {name}'),
        os.path.join(outdir, 'samples.png'))
    plotting.save(plotting.image_rows_figure(
        [x, latent.reconstruct(model, params, x)], ['input', 'reconstruction'],
        f'reconstructions: {name}'), os.path.join(outdir, 'reconstructions.png'))
  print(f'wrote latent, {"manifold, " if codes.shape[1] == 2 else ""}samples and '
        f'reconstructions to {outdir}')


def _latent_report_parser(prog):
  p = flags.Parser(
      prog, SUBCOMMANDS['latent-report'][1] + (
          ' (docs/metrics.md). Scores the latest checkpoint on its own data: '
          'latent_report.json, latent_report.md and latent.png, walk.png, '
          'manifold.png (2-D codes), samples.png.'),
      ['vae-jax latent-report --workdir=runs/vae',
       'vae-jax latent-report --workdir=runs/vae --classifier=runs/classifier_mnist.npz'])
  p.add_argument('--workdir', required=True, help='a trained run directory')
  p.add_argument('--out', default=None,
                 help='output folder (default: WORKDIR/latent_report)')
  p.add_argument('--classifier', default=None, metavar='PATH.npz',
                 help='the independent classifier for the classifier scores and sample '
                      'quality: loaded from PATH, or trained on the real training images '
                      'and saved there first (minutes); without it they are skipped')
  p.add_argument('--seed', type=int, default=0, help='PRNG seed of the metrics')
  p.add_argument('--num_samples', type=int, default=5000, help='codes drawn per sampler')
  p.add_argument('--data_dir', default=None,
                 help='directory of IDX files, overriding the run config')
  return p


def latent_report(argv, prog='vae-jax latent-report'):
  """Writes the latent-space report of a workdir (vae_jax.analysis.latent_report)."""
  parser = _latent_report_parser(prog)
  args = parser.parse_args(argv)
  if args.num_samples < 2:
    parser.error('--num_samples must be ≥ 2')
  from vae_jax.infra import errors
  with errors.user_errors():
    from vae_jax.analysis import latent_report as report_lib
    if args.classifier and not os.path.exists(args.classifier):
      print(f'training the classifier once, saved to {args.classifier} (minutes)',
            file=sys.stderr)
    out = args.out or os.path.join(args.workdir, 'latent_report')
    report = report_lib.report_workdir(
        args.workdir, out, classifier_path=args.classifier, seed=args.seed,
        data_dir=args.data_dir, num_samples=args.num_samples,
        log=lambda e, loss: print(f'classifier epoch {e}: loss {loss:.4f}', file=sys.stderr))
  m = report['metrics']
  print(f'path_jump_ratio {m["path_jump_ratio"]:.3f}, prior/hole_share '
        f'{m["prior/hole_share"]:.3f}, knn_accuracy {m["knn_accuracy"]:.3f}')
  print(f'wrote {report_lib.JSON_FILE}, {report_lib.MARKDOWN_FILE} and '
        f'{", ".join(report["figures"])} to {out}')


LOCAL = {'plot': plot, 'latent-report': latent_report}


def _usage():
  lines = [f'usage: vae-jax {{{",".join(SUBCOMMANDS)}}} [flags]', '',
           'Autoencoders and VAEs in JAX: train, measure and plot them.', '', 'subcommands:']
  lines += [f'  {name:<14} {text}' for name, (_, text) in SUBCOMMANDS.items()]
  return '\n'.join(lines) + '\n\n' + EXAMPLES


def _entry_point(name):
  """The ``main(argv, prog)`` of a subcommand, imported only when it runs."""
  if name in LOCAL:
    return LOCAL[name]
  module = SUBCOMMANDS[name][0]
  try:
    return importlib.import_module(module).main
  except ModuleNotFoundError as e:
    if e.name != module:
      raise  # a broken import inside the module is a bug, not a missing command
    from vae_jax.infra import errors
    errors.exit_with(f'vae-jax {name} is not in this checkout ({module.replace(".", "/")}.py '
                     'is missing): update the checkout (git pull) and reinstall')


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ('-h', '--help'):
    print(_usage())
    return 0 if argv else 2
  name, rest = argv[0], argv[1:]
  if name not in SUBCOMMANDS:
    print(f'error: unknown subcommand {name!r}: use one of {", ".join(SUBCOMMANDS)} '
          '(see vae-jax --help)', file=sys.stderr)
    return 2
  entry = _entry_point(name)
  kwargs = {'prog': f'vae-jax {name}'}
  if name == 'likelihood':
    # The study layer cannot import the publish step above it: it is handed in.
    from vae_jax import publish
    kwargs['publish_step'] = publish.main
  status = entry(rest, **kwargs)
  return status if isinstance(status, int) else 0  # some mains return their results


if __name__ == '__main__':
  sys.exit(main())
