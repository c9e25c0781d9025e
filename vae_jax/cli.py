"""The ``vae-jax`` command: train, evaluate, plot, latent-report, reproduce.

Each subcommand wraps the library; ``vae-jax <subcommand> --help`` shows its
options and an example.
"""

import argparse
import os
import runpy
import sys

EXAMPLES = """examples:
  vae-jax train --config=experiments/configs/mnist_vae_2d.py --workdir=runs/vae
  vae-jax evaluate --workdir=runs/vae --iwae_samples=5000
  vae-jax plot --workdir=runs/vae --outdir=runs/vae/figures
  vae-jax latent-report --workdir=runs/vae --classifier=runs/classifier_mnist.npz
  vae-jax reproduce --outdir=runs/study --quick
"""

SUBCOMMANDS = {
    'train': 'train a config in a workdir (resumes if rerun); same flags as python -m vae_jax.main',
    'evaluate': 'ELBO and importance-weighted log-likelihood of a trained workdir',
    'plot': 'figures of a trained workdir: latent scatter, manifold, samples, reconstructions',
    'latent-report': 'continuity, completeness and sample quality of a trained workdir, '
                     'as JSON, markdown and figures',
    'reproduce': 'the seed study: every figure of the article and the metrics table',
}


def _plot_parser():
  p = argparse.ArgumentParser(
      prog='vae-jax plot', description=SUBCOMMANDS['plot'],
      epilog='example:\n  vae-jax plot --workdir=runs/vae --outdir=runs/vae/figures',
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--workdir', required=True, help='a trained run directory')
  p.add_argument('--outdir', default=None, help='where PNGs go (default: WORKDIR/figures)')
  p.add_argument('--count', type=int, default=16, help='images per row of samples')
  return p


def plot(argv):
  """Writes latent.png, manifold.png (2-D codes), samples.png, reconstructions.png."""
  args = _plot_parser().parse_args(argv)
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


def _latent_report_parser():
  p = argparse.ArgumentParser(
      prog='vae-jax latent-report', description=SUBCOMMANDS['latent-report'] + (
          ' (docs/metrics.md). Scores the latest checkpoint on its own data: '
          'latent_report.json, latent_report.md and latent.png, walk.png, '
          'manifold.png (2-D codes), samples.png.'),
      epilog='examples:\n  vae-jax latent-report --workdir=runs/vae\n'
             '  vae-jax latent-report --workdir=runs/vae --classifier=runs/classifier_mnist.npz',
      formatter_class=argparse.RawDescriptionHelpFormatter)
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


def latent_report(argv):
  """Writes the latent-space report of a workdir (vae_jax.analysis.latent_report)."""
  parser = _latent_report_parser()
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


HELP_FLAGS = ('-h', '--help', '--helpshort')


def train(argv):
  """``python -m vae_jax.main`` under the name ``vae-jax train``."""
  from vae_jax import main as train_main
  from vae_jax.infra import errors
  if any(a in HELP_FLAGS for a in argv):
    # absl's --help describes sys.modules['__main__'], here the console-script
    # shim with no docstring and no flags: describe vae_jax.main instead.
    from absl import flags
    doc = train_main.__doc__.replace('python -m vae_jax.main', 'vae-jax train')
    print(f'usage: vae-jax train --config=FILE --workdir=DIR [--config.FIELD=VALUE ...]\n'
          f'{doc}\nflags:\n{flags.FLAGS.module_help(train_main)}\n\n'
          'Every config field (commented in vae_jax/core/config.py) can be set with '
          '--config.FIELD=VALUE.')
    return
  errors.run_absl_app(train_main.main, ['vae-jax train'] + argv)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ('-h', '--help'):
    print('usage: vae-jax {train,evaluate,plot,latent-report,reproduce} [options]\n\n'
          'Autoencoders and VAEs in JAX: train, measure and plot them.\n\nsubcommands:')
    for name, text in SUBCOMMANDS.items():
      print(f'  {name:<14} {text}')
    print('\n' + EXAMPLES)
    return 0 if argv else 2
  command, rest = argv[0], argv[1:]
  if command == 'train':
    train(rest)
  elif command == 'evaluate':
    from vae_jax.core import evaluate
    evaluate.main(rest, prog='vae-jax evaluate')
  elif command == 'plot':
    plot(rest)
  elif command == 'latent-report':
    latent_report(rest)
  elif command == 'reproduce':
    sys.argv = ['vae-jax reproduce'] + rest
    try:
      runpy.run_module('vae_jax.study.run', run_name='__main__', alter_sys=True)
    except SystemExit as e:
      if any(a in HELP_FLAGS for a in rest) and e.code == 1:
        return 0  # absl ends --help with status 1; help asked for is not an error
      raise
  else:
    print(f'error: unknown subcommand {command!r}: use one of {", ".join(SUBCOMMANDS)}',
          file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
