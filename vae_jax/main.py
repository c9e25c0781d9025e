r"""Trains one experiment config in a workdir (and resumes it when rerun).

  python -m vae_jax.main --config=experiments/configs/mnist_vae_2d.py \
      --workdir=/tmp/mnist_vae_2d [--config.num_epochs=5]

A user error (bad config value, missing data, unusable workdir) ends with one
line on stderr that names the problem and the fix, and exit status 2.
"""

import sys

from absl import flags
from ml_collections import config_flags

from vae_jax.infra import errors

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (experiments/configs/*.py).',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, config.')
flags.DEFINE_bool('allow_config_change', False,
                  'Continue a workdir whose config.json differs from --config.')
flags.DEFINE_bool('quiet', False, 'No progress bar.')


def load_config():
  """``FLAGS.config``, or one line and exit 2 when the file cannot be loaded.

  ml_collections records a failed load (missing file, syntax error, an
  exception in get_config) at parse time and raises it, with two tracebacks,
  at the first access.
  """
  try:
    config = FLAGS.config
    config.keys()  # the first access raises a deferred load failure
  except Exception as e:  # OSError for a missing file; anything get_config raises
    path = config_flags.get_config_filename(FLAGS['config'])
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    cause = e.__cause__ or e.__context__
    reason = (f'{type(cause).__name__}: {cause}' if cause is not None
              and not isinstance(cause, OSError) else (lines[-1] if lines else type(e).__name__))
    errors.exit_with(f'cannot load --config={path} ({reason}): pass an existing '
                     'config file, e.g. --config=experiments/configs/mnist_vae_2d.py')
  return config


def main(argv):
  if len(argv) > 1:
    errors.exit_with(f'unexpected arguments {argv[1:]}: pass options as --flag=value')
  if FLAGS['config'].value is None or FLAGS.workdir is None:
    errors.exit_with('--config and --workdir are required, e.g. '
                     '--config=experiments/configs/mnist_vae_2d.py --workdir=/tmp/run')
  config = load_config()
  with errors.user_errors():
    if config.distributed:
      from vae_jax.infra import distributed
      distributed.initialize()
    if FLAGS.quiet:
      config.progress = False
    from vae_jax.core import train  # after distributed init: it touches jax.devices()
    result = train.train_and_evaluate(
        config, FLAGS.workdir, allow_config_change=FLAGS.allow_config_change)
  test = ', '.join(f'{k} {v:.3f}' for k, v in sorted(result['test'].items()))
  print(f'test: {test}')


def run():
  errors.run_absl_app(main, sys.argv)


if __name__ == '__main__':
  run()
