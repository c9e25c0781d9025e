r"""Trains one experiment config in a workdir (and resumes it when rerun).

  vae-jax train --config=experiments/configs/mnist_vae_2d.py \
      --workdir=runs/mnist_vae_2d [--config.num_epochs=5]

(``python -m vae_jax.main`` takes the same flags.) Every config field,
commented in vae_jax/core/config.py, can be set with ``--config.FIELD=VALUE``,
parsed as the field's type: ``--config.model.mlp.hidden_sizes=(256,128)``.
A user error (bad config value, missing data, unusable workdir) ends with one
line on stderr that names the problem and the fix, and exit status 2.
"""

import argparse
import sys

from vae_jax.core import config as config_lib
from vae_jax.infra import errors
from vae_jax.infra import flags


def parser(prog='vae-jax train'):
  p = flags.Parser(
      prog, 'Trains one experiment config in a workdir (and resumes it when rerun). Every '
      'config field (commented in vae_jax/core/config.py) can be set with '
      '--config.FIELD=VALUE, parsed as the field\'s type.',
      ['vae-jax train --config=experiments/configs/mnist_vae_2d.py '
       '--workdir=runs/mnist_vae_2d --config.num_epochs=5'],
      usage=f'{prog} --config=FILE --workdir=DIR [--config.FIELD=VALUE ...] [options]')
  p.add_argument('--config', default=None, metavar='FILE',
                 help='experiment config file (experiments/configs/*.py, or a bare name there)')
  p.add_argument('--workdir', default=None, help='run directory: checkpoints, metrics, config')
  p.add_bool('allow_config_change', False,
             'continue a workdir whose config.json differs from --config')
  p.add_bool('quiet', False, 'no progress bar')
  p.add_verbosity()
  p.add_argument('unexpected', nargs='*', help=argparse.SUPPRESS)
  return p


def main(argv=None, prog='vae-jax train'):
  argv = sys.argv[1:] if argv is None else argv
  rest, overrides = config_lib.split_overrides(argv)
  args = parser(prog).parse_args(rest)
  flags.configure_logging(args.verbosity)
  if args.unexpected:
    errors.exit_with(f'unexpected arguments {args.unexpected}: pass options as --flag=value')
  if args.config is None or args.workdir is None:
    errors.exit_with('--config and --workdir are required, e.g. '
                     '--config=experiments/configs/mnist_vae_2d.py --workdir=/tmp/run')
  with errors.user_errors():
    config = config_lib.from_command_line(args.config, overrides)
    if config.distributed:
      from vae_jax.infra import distributed
      distributed.initialize()
    if args.quiet:
      config.progress = False
    from vae_jax.core import train  # after distributed init: it touches jax.devices()
    result = train.train_and_evaluate(
        config, args.workdir, allow_config_change=args.allow_config_change)
  test = ', '.join(f'{k} {v:.3f}' for k, v in sorted(result['test'].items()))
  print(f'test: {test}')
  return 0


if __name__ == '__main__':
  sys.exit(main(prog='python -m vae_jax.main'))
