"""The ``vae-jax`` command: train, evaluate, plot, reproduce.

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
  vae-jax reproduce --outdir=runs/study --quick
"""

SUBCOMMANDS = {
    'train': 'train a config in a workdir (resumes if rerun); same flags as python -m vae_jax.main',
    'evaluate': 'ELBO and importance-weighted log-likelihood of a trained workdir',
    'plot': 'figures of a trained workdir: latent scatter, manifold, samples, reconstructions',
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
  from vae_jax import errors
  with errors.user_errors():
    import jax
    import numpy as np
    from vae_jax import evaluate, latent, plotting, train

    config, params = evaluate.restore_params(args.workdir)
    exp = train.build_experiment(config)
    outdir = args.outdir or os.path.join(args.workdir, 'figures')
    os.makedirs(outdir, exist_ok=True)
    model, dataset = exp.model, config.data.name
    codes, _ = latent.encode(model, params, exp.test_images)
    name = f'{config.model.kind} ({config.model.family}), {dataset}, seed {config.seed}'
    shown = codes[:, :2]
    if codes.shape[1] > 2:  # project onto the two main directions of the codes
      centred = codes - codes.mean(0)
      _, _, vt = np.linalg.svd(centred, full_matrices=False)
      shown = centred @ vt[:2].T
    plotting.save(plotting.latent_figure(shown, exp.test_labels, dataset,
                                         f'test codes{" (PCA)" if codes.shape[1] > 2 else ""}: {name}'),
                  os.path.join(outdir, 'latent.png'))
    if codes.shape[1] == 2:
      center, scale = (0.0, 0.0), (1.0, 1.0)
      if config.model.kind == 'autoencoder':  # no N(0, I) prior: use the codes' spread
        center, scale = tuple(codes.mean(0)), tuple(codes.std(0))
      plotting.save(plotting.manifold_figure(lambda z: latent.decode(model, params, z),
                                             codes, exp.test_labels, dataset, name,
                                             center=center, scale=scale),
                    os.path.join(outdir, 'manifold.png'))
    mean, std = (0.0, 1.0) if config.model.kind == 'vae' else (codes.mean(0), codes.std(0))
    z = mean + std * np.asarray(jax.random.normal(jax.random.key(config.seed),
                                                  (args.count, codes.shape[1])))
    x = exp.test_images[:args.count]
    plotting.save(plotting.image_rows_figure(
        [latent.decode(model, params, z)], ['prior samples'], f'samples: {name}'),
        os.path.join(outdir, 'samples.png'))
    plotting.save(plotting.image_rows_figure(
        [x, latent.reconstruct(model, params, x)], ['input', 'reconstruction'],
        f'reconstructions: {name}'), os.path.join(outdir, 'reconstructions.png'))
  print(f'wrote latent, {"manifold, " if codes.shape[1] == 2 else ""}samples and '
        f'reconstructions to {outdir}')


def _run_absl_module(module, argv, prog):
  from vae_jax import errors
  mod = __import__(f'vae_jax.{module}', fromlist=['main'])
  errors.run_absl_app(mod.main, [prog] + argv)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ('-h', '--help'):
    print('usage: vae-jax {train,evaluate,plot,reproduce} [options]\n\n'
          'Autoencoders and VAEs in JAX: train, measure and plot them.\n\nsubcommands:')
    for name, text in SUBCOMMANDS.items():
      print(f'  {name:<10} {text}')
    print('\n' + EXAMPLES)
    return 0 if argv else 2
  command, rest = argv[0], argv[1:]
  if command == 'train':
    _run_absl_module('main', rest, 'vae-jax train')
  elif command == 'evaluate':
    _run_absl_module('evaluate', rest, 'vae-jax evaluate')
  elif command == 'plot':
    plot(rest)
  elif command == 'reproduce':
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'experiments', 'reproduce_seed.py')
    if not os.path.exists(script):
      print('error: vae-jax reproduce needs the repository checkout (experiments/): '
            'install with pip install -e . from a clone', file=sys.stderr)
      return 2
    sys.argv = ['vae-jax reproduce'] + rest
    runpy.run_path(script, run_name='__main__')
  else:
    print(f'error: unknown subcommand {command!r}: use one of {", ".join(SUBCOMMANDS)}',
          file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
