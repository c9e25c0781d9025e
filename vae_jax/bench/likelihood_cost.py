r"""What IWAE-k training costs on this machine: images/s and hours per run, by k.

The likelihood headline (experiments/configs/mnist_vae_50d_dynamic.py) can be
trained on the ELBO (k = 1) or on the IWAE bound with k samples, whose
decoder work grows k-fold. This times the trainer's own scanned steps for
each k on the machine it runs on and converts them to hours for a number of
epochs, so the choice of k for a 2-hour budget is made from a measurement.

  python -m vae_jax.bench.likelihood_cost --json=results/likelihood_cost.json

Takes a few minutes; run it on a quiet machine.
"""

import json
import os
import sys


from vae_jax.infra import flags
from vae_jax.bench import benchmark

DEFAULT_CONFIG = 'mnist_vae_50d_dynamic'
TRAIN_IMAGES = 60000


def measure_costs(data_dir, ks, steps, reps, epochs, config=DEFAULT_CONFIG):
  """``[{k, images_per_s, seconds_per_epoch, hours}]`` for each k, timed on a data slice."""
  from vae_jax.infra import run_clock
  rows = []
  for k in ks:
    result, _, _ = benchmark.bench_train(config, data_dir, steps, reps, count_xla=False,
                                         iwae_samples=k, **{'data.num_train': 20 * steps * 100})
    rate = result['images_per_s']['median']
    rows.append({'k': k, 'images_per_s': rate, 'seconds_per_epoch': TRAIN_IMAGES / rate,
                 'hours': epochs * TRAIN_IMAGES / rate / 3600})
  return {'config': config, 'epochs': epochs, 'machine': run_clock.machine_description(),
          'rows': rows}


def main(argv=None, prog='python -m vae_jax.bench.likelihood_cost'):
  parser = flags.Parser(prog, __doc__.split('\n')[0], [
      'python -m vae_jax.bench.likelihood_cost --json=results/likelihood_cost.json'])
  parser.add_argument('--json', required=True, help='where to write the measurement')
  parser.add_argument('--config', default=DEFAULT_CONFIG,
                      help='a config under experiments/configs, without .py')
  parser.add_argument('--ks', default='1,2,5,10', help='comma-separated k values')
  parser.add_argument('--epochs', type=int, default=1000, help='epochs of the run to price')
  parser.add_argument('--steps', type=int, default=30, help='steps per timed chunk')
  parser.add_argument('--reps', type=int, default=3, help='timed chunks per k')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR', ''))
  args = parser.parse_args(argv)
  try:
    ks = [int(k) for k in args.ks.split(',')]
  except ValueError:
    parser.error(f'--ks={args.ks} must be comma-separated integers, e.g. --ks=1,5')
  if min(ks) < 1 or args.epochs < 1 or args.steps < 1 or args.reps < 1:
    parser.error('--ks, --epochs, --steps and --reps must be at least 1')
  result = measure_costs(args.data_dir, ks, args.steps, args.reps, args.epochs, args.config)
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  with open(args.json, 'w') as f:
    json.dump(result, f, indent=2, sort_keys=True)
  for r in result['rows']:
    print(f"k={r['k']}: {r['images_per_s']:.0f} images/s, {r['seconds_per_epoch']:.1f} s/epoch, "
          f"{r['hours']:.2f} h for {args.epochs} epochs")
  return 0


if __name__ == '__main__':
  sys.exit(main(prog='python -m vae_jax.bench.likelihood_cost'))
