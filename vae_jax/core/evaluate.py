r"""Test-set likelihood of a trained VAE: the ELBO and the importance-weighted bound.

For each test image ``x`` with encoder posterior q(z|x) and k samples
z_1..z_k ~ q(z|x):

* ``elbo``: E_q[log p(x|z)] - KL(q(z|x) || p(z)), the reconstruction term
  averaged over the k samples and the KL in closed form;
* ``iwae``: log (1/k) Σ_i p(x, z_i) / q(z_i|x) (Burda et al. 2015), a lower
  bound on log p(x) that is ≥ the ELBO in expectation, grows with k and tends
  to log p(x) as k → ∞. ``-iwae`` with k = 5000 is the "test NLL" quoted in the
  literature (Burda et al.: 86.76 nats for a VAE, 84.78 for an IWAE with k=50,
  one stochastic layer, dynamically binarised MNIST).

Both are in nats per example (summed over pixels) and in bits per dimension,
nats / (D · ln 2) with D the number of pixels. They are only comparable between runs
on the same data variant: ``binarize`` 'static' or 'dynamic' evaluates a
binary test set (a proper likelihood); 'none' scores grey values with a
Bernoulli "likelihood", which is not a density over images. Every result
carries that tag.

Memory: k = 5000 samples for 10,000 images are never held at once. Examples
are processed in chunks of ``example_chunk`` and, for each, samples in chunks
of ``sample_chunk``; a jitted chunk function decodes ``sample_chunk ×
example_chunk`` codes and folds their log-weights into a running logsumexp.
Noise is drawn per example from ``fold_in(key, example index)`` so a result
does not depend on ``example_chunk`` or on how many examples are evaluated.

Command line::

  python -m vae_jax.core.evaluate --workdir runs/mnist_vae_2d --iwae_samples 5000 \
      [--num_examples N] [--seed S]

restores the latest checkpoint, prints the numbers and writes them to
``<workdir>/eval_iwae<k>.json`` (``eval_iwae<k>_n<N>.json`` for a subset),
holding the workdir's lock while it writes there. Ctrl-C or SIGTERM stops it
after the current chunk of images, keeping the results so far in
``eval_iwae<k>[_n<N>].partial.npz`` beside the output; the same command
again resumes from there (exit 130 / 143 with one line, as training).
"""

import contextlib
import functools
import io
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.core import data as data_lib
from vae_jax.core import experiment, latent, losses, models
from vae_jax.infra import chunks, interrupts, run_clock
from vae_jax.infra import progress as progress_lib
from vae_jax.infra import workdir as workdir_lib
from vae_jax.infra import errors, flags

# Off a terminal, a progress line after the first chunk, then at most this
# often, and after the last.
LOG_EVERY_SECONDS = 10.0


class EvaluateError(errors.UserError, ValueError):
  """The run cannot be evaluated as asked; the message names the fix."""


# ----------------------------------------------------------------------------
# Bounds
# ----------------------------------------------------------------------------
def _log_likelihood_fn(likelihood, gaussian_variance):
  """``(decoder_output [B, ...], targets [B, ...]) -> [B]`` log p(x|z) in nats."""
  if callable(likelihood):
    return likelihood
  if likelihood not in ('bernoulli', 'gaussian'):
    raise ValueError(f"unknown likelihood {likelihood!r}: use 'bernoulli', "
                     "'gaussian' or a function (decoder_output, targets) -> [B]")
  return _named_log_likelihood(likelihood, float(gaussian_variance))


@functools.lru_cache(maxsize=None)
def _named_log_likelihood(likelihood, gaussian_variance):
  # Cached: the same function object each time, so the jitted chunk is
  # compiled once per model and shape, not once per call.
  return functools.partial(losses.reconstruction_log_likelihood,
                           likelihood=likelihood, variance=gaussian_variance)


# latent's jitted encode under this module's name: the benchmark calls it and a
# test patches it to interrupt an evaluation between chunks.
_encode = latent.encode_batch


@functools.partial(jax.jit, static_argnames=('model', 'log_lik', 'num'))
def _accumulate(params, x, example_keys, chunk_index, lse, recon_sum, log_w_sum,
                *, model, log_lik, num):
  """Folds ``num`` more samples per example into the running sums.

  Each image is scored by the model protocol's ``log_weights`` with its own key,
  ``fold_in(example_keys[b], chunk_index)``, so a result does not depend on
  how the images are chunked.

  Args:
    x: ``[B, ...]`` targets.
    example_keys: ``[B]`` one PRNG key per example.
    lse: ``[B]`` running logsumexp of the log-weights (-inf at the start).
    recon_sum: ``[B]`` running sum of log p(x|z_i).
    log_w_sum: ``[B]`` running sum of the log-weights.

  Returns:
    updated ``(lse, recon_sum, log_w_sum)``.
  """
  def one_image(key, image):
    imp = model.apply({'params': params}, image[None], image[None],
                      jax.random.fold_in(key, chunk_index), num, log_lik,
                      method='log_weights')
    return imp.log_w[:, 0], imp.recon_ll[:, 0]                            # [S] each

  log_w, recon_ll = jax.vmap(one_image, out_axes=1)(example_keys, x)    # [S, B]
  lse = jnp.logaddexp(lse, jax.nn.logsumexp(log_w, axis=0))
  return lse, recon_sum + jnp.sum(recon_ll, axis=0), log_w_sum + jnp.sum(log_w, axis=0)


def iwae_per_example(model, params, images, key, *, num_samples,
                     likelihood='bernoulli', gaussian_variance=1.0,
                     example_chunk=50, sample_chunk=100, progress=False,
                     done=None, after_chunk=None):
  """Per-example ELBO and IWAE-k bound (nats), as numpy arrays ``[N]``.

  Args:
    model: a VAE kind of the model protocol (models.py): ``log_weights`` scores
      the draws, ``closed_form_kl`` says how the ELBO is formed.
    params: its parameters.
    images: ``[N, ...]`` targets (binarised or grey, as the model was trained).
    key: PRNG key; the result is a deterministic function of it.
    num_samples: k of the bound (1 gives a one-sample ELBO estimate).
    likelihood: 'bernoulli', 'gaussian' (sigmoid mean, ``gaussian_variance``)
      or a function ``(decoder_output [B, ...], targets [B, ...]) -> [B]``.
    example_chunk, sample_chunk: chunk sizes; memory grows with their product.
    progress: a bar over the images (ETA, images/s, running NLL) when stderr
      is a terminal, else plain lines: after the first chunk, then at most
      every ``LOG_EVERY_SECONDS``, and after the last.
    done: ``{'elbo': [M], 'iwae': [M]}`` of the first M images from an
      interrupted call with the same arguments (M a multiple of
      ``example_chunk``): they are kept, not recomputed.
    after_chunk: called with ``{'elbo': [m], 'iwae': [m]}`` of the images done
      so far after each chunk; it may raise to stop (as evaluate_workdir does
      on a signal).

  Returns:
    ``{'elbo': [N], 'iwae': [N]}``: ELBO = mean_i log p(x|z_i) - KL(q||p) (the
    mean log-weight for a model without a closed-form KL, hierarchical.py),
    IWAE = logsumexp_i(log p(x, z_i) - log q(z_i|x)) - log k.
  """
  if num_samples < 1:
    raise ValueError(f'num_samples must be ≥ 1, got {num_samples}')
  images = np.asarray(images, np.float32)
  n = images.shape[0]
  log_lik = _log_likelihood_fn(likelihood, gaussian_variance)
  example_chunk = max(1, min(example_chunk, n))
  sample_chunk = max(1, min(sample_chunk, num_samples))
  elbo, iwae = ([done['elbo']], [done['iwae']]) if done is not None else ([], [])
  first = len(done['iwae']) if done is not None else 0
  if first % example_chunk and first < n:
    raise ValueError(f'done holds {first} images, not a multiple of '
                     f'example_chunk={example_chunk}')
  bar = progress_lib.Progress(f'IWAE-{num_samples}', n, first, enabled=progress)
  for start in range(first, n, example_chunk):
    x = images[start:start + example_chunk]
    valid = x.shape[0]
    x = jnp.asarray(chunks.pad_rows(x, example_chunk))  # one compiled shape for every chunk
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(
        jnp.arange(start, start + example_chunk))
    lse = jnp.full((example_chunk,), -jnp.inf, jnp.float32)
    recon_sum = log_w_sum = jnp.zeros((example_chunk,), jnp.float32)
    for j, s in enumerate(range(0, num_samples, sample_chunk)):
      lse, recon_sum, log_w_sum = _accumulate(params, x, keys, j, lse, recon_sum, log_w_sum,
                                              model=model, log_lik=log_lik,
                                              num=min(sample_chunk, num_samples - s))
    if model.closed_form_kl:  # mean log p(x|z) - KL, the KL in closed form
      kl = losses.gaussian_kl(*_encode(model, params, x))
      elbo.append(np.asarray(recon_sum / num_samples - kl)[:valid])
    else:                     # the mean log-weight
      elbo.append(np.asarray(log_w_sum / num_samples)[:valid])
    iwae.append(np.asarray(lse - math.log(num_samples))[:valid])
    nll = -np.mean(np.concatenate(iwae))
    bar.update(valid, nll=f'{nll:.2f}')
    bar.log(f'{bar.done}/{n} images, NLL so far {nll:.2f}',
            min_interval=0.0 if bar.done == n else LOG_EVERY_SECONDS)
    if after_chunk is not None:
      after_chunk({'elbo': np.concatenate(elbo), 'iwae': np.concatenate(iwae)})
  bar.close()
  return {'elbo': np.concatenate(elbo).astype(np.float64),
          'iwae': np.concatenate(iwae).astype(np.float64)}


def _stderr(values):
  return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def evaluate_likelihood(model, params, images, key, *, num_samples,
                        likelihood='bernoulli', gaussian_variance=1.0,
                        binarize=None, example_chunk=50, sample_chunk=100,
                        progress=False, done=None, after_chunk=None):
  """Means over ``images`` of the ELBO and IWAE-k bound, in nats and bits/dim.

  Same arguments as :func:`iwae_per_example`; ``binarize`` (the data variant:
  'none', 'static' or 'dynamic') is only recorded in the result.

  Returns:
    dict with ``elbo`` and ``iwae`` (mean bounds on log p(x), nats),
    ``neg_elbo`` and ``nll`` (= -iwae, the literature's test NLL), their
    ``*_stderr`` over examples, ``neg_elbo_bits_per_dim`` and
    ``nll_bits_per_dim`` (nats / (D ln 2)), ``iwae_minus_elbo``, and the tags
    ``num_samples``, ``num_examples``, ``num_dims``, ``likelihood``, ``binarize``.
  """
  per = iwae_per_example(model, params, images, key, num_samples=num_samples,
                         likelihood=likelihood, gaussian_variance=gaussian_variance,
                         example_chunk=example_chunk, sample_chunk=sample_chunk,
                         progress=progress, done=done, after_chunk=after_chunk)
  num_dims = int(np.prod(np.shape(images)[1:]))
  per_bit = 1.0 / (num_dims * math.log(2.0))
  elbo, iwae = float(np.mean(per['elbo'])), float(np.mean(per['iwae']))
  return {
      'elbo': elbo, 'iwae': iwae, 'neg_elbo': -elbo, 'nll': -iwae,
      'elbo_stderr': _stderr(per['elbo']), 'nll_stderr': _stderr(per['iwae']),
      'iwae_minus_elbo': float(np.mean(per['iwae'] - per['elbo'])),
      'neg_elbo_bits_per_dim': -elbo * per_bit, 'nll_bits_per_dim': -iwae * per_bit,
      'num_samples': int(num_samples), 'num_examples': int(len(per['iwae'])),
      'num_dims': num_dims,
      'likelihood': likelihood if isinstance(likelihood, str) else getattr(
          likelihood, '__name__', 'custom'),
      'binarize': binarize,
  }


# ----------------------------------------------------------------------------
# Whole runs
# ----------------------------------------------------------------------------
DATA_NOTES = {
    'none': ('grey-value data scored with a Bernoulli likelihood: not a density '
             'over images; compare only with other grey-value runs'),
    'static': 'statically binarised data (one fixed binarisation of train and test)',
    'dynamic': ('dynamically binarised training data; the test set is binarised '
                'once with a fixed seed'),
}


def evaluate_workdir(workdir, *, num_samples=5000, num_examples=0, seed=0,
                     data_dir=None, example_chunk=50, sample_chunk=100, progress=False,
                     progress_file=None, matmul_precision='highest'):
  """Restores ``workdir``'s latest checkpoint and evaluates its test likelihood.

  The test set is the one the run was evaluated on during training (same
  ``data.num_test`` limit and binarisation); ``num_examples`` > 0 keeps its first
  ``num_examples`` images. The matmuls run at ``matmul_precision`` (a
  ``jax.default_matmul_precision`` name): 'highest', the default, is full
  float32 on every backend, so a likelihood means the same on a GPU, whose
  'default' is TF32, as on a CPU. Returns the :func:`evaluate_likelihood` dict
  plus the run's tags (``workdir``, ``step``, ``data``, ``seed``, ``seconds``: of every
  call that worked on it, ``num_segments``: how many, ``machine``: where it ran, ``note``).

  SIGINT or SIGTERM stops it after the current chunk of images with
  :class:`interrupts.Interrupted`; with ``progress_file`` (an ``.npz`` path)
  the results so far are saved there first, and a later call with the same
  arguments resumes from them (to the same numbers). The caller removes the
  file once it has the result.
  """
  with interrupts.stop_on_signals() as stop:
    config, model, params, step = experiment.restore(workdir)
    if config.model.kind != 'vae':
      raise EvaluateError(
          f'{workdir} holds a model.kind={config.model.kind!r} run: the ELBO and '
          'IWAE bounds need a VAE (an autoencoder defines no likelihood)')
    if data_dir:
      config.data.dir = data_dir
    images, _ = data_lib.load_split(config.data, 'test')
    if num_examples:
      images = images[:num_examples]
    settings = dict(workdir=os.path.abspath(workdir), step=step, num_samples=num_samples,
                    num_images=len(images), seed=seed, example_chunk=example_chunk,
                    sample_chunk=sample_chunk, data=config.data.name,
                    binarize=config.data.binarize, matmul_precision=matmul_precision)

    done, seconds_before, segments_before = _load_partial(progress_file, settings)

    def after_chunk(so_far):
      if stop.requested():
        elapsed = seconds_before + time.time() - start
        raise stop.interrupted(_save_partial(progress_file, settings, so_far, elapsed,
                                             segments_before + 1))

    start = time.time()
    with jax.default_matmul_precision(matmul_precision):
      result = evaluate_likelihood(
          model, params, images, jax.random.key(seed), num_samples=num_samples,
          likelihood=config.model.likelihood,
          gaussian_variance=config.model.gaussian_variance,
          binarize=config.data.binarize, example_chunk=example_chunk,
          sample_chunk=sample_chunk, progress=progress, done=done, after_chunk=after_chunk)
  # An evaluation resumed after an interrupt counts the seconds of every call.
  result.update(workdir=os.path.abspath(workdir), step=step, data=config.data.name,
                seed=seed, matmul_precision=matmul_precision,
                backend=jax.default_backend(), seconds=seconds_before + time.time() - start,
                num_segments=segments_before + 1,
                machine=run_clock.machine_description(),
                note=DATA_NOTES[config.data.binarize])
  return result


def partial_path(out):
  """Where an interrupted evaluation writing ``out`` keeps its results so far."""
  return os.path.splitext(out)[0] + '.partial.npz'


def _save_partial(path, settings, so_far, seconds, num_segments):
  """Saves the per-example results so far and the seconds spent; returns the line that says so."""
  where = f'at test image {len(so_far["iwae"])} of {settings["num_images"]}'
  if path is None:
    return f'interrupted {where}; nothing saved; rerun the same command to start again'
  buffer = io.BytesIO()
  np.savez(buffer, settings=json.dumps(settings, sort_keys=True), seconds=seconds,
           num_segments=num_segments, **so_far)
  try:
    workdir_lib.atomic_write_bytes(path, buffer.getvalue())
  except OSError as e:
    return (f'interrupted {where}; could not save the results so far in {path} '
            f'({e.strerror}); rerun the same command to start again')
  return (f'interrupted {where}; saved the results so far in {path}; rerun the same '
          'command to resume')


def _load_partial(path, settings):
  """``(results, seconds, segments)`` an interrupted evaluation with the same
  ``settings`` saved, else ``(None, 0.0, 0)``."""
  nothing = None, 0.0, 0
  if path is None or not os.path.exists(path):
    return nothing
  try:
    with np.load(path) as f:
      if json.loads(str(f['settings'])) != json.loads(json.dumps(settings)):
        return nothing  # another checkpoint, k, seed or chunking: start over
      return ({'elbo': f['elbo'], 'iwae': f['iwae']}, float(f['seconds']),
              int(f['num_segments']))
  except (OSError, ValueError, KeyError):
    return nothing  # unreadable or older: start over (it is replaced when next saved)


def default_output_path(workdir, num_samples, num_examples=0, matmul_precision='highest'):
  name = (f'eval_iwae{num_samples}' + (f'_n{num_examples}' if num_examples else '')
          + ('' if matmul_precision == 'highest' else f'_{matmul_precision}'))
  return os.path.join(workdir, name + '.json')


def format_result(r):
  bpd = 'bits/dim'
  return '\n'.join([
      f'{r["data"]} (binarize={r["binarize"]}, {r["likelihood"]} likelihood), '
      f'{r["num_examples"]} test images, checkpoint step {r["step"]}, '
      f'k={r["num_samples"]}, seed {r["seed"]}, {r["seconds"]:.1f} s',
      f'  -ELBO          {r["neg_elbo"]:9.3f} ± {r["elbo_stderr"]:.3f} nats  '
      f'{r["neg_elbo_bits_per_dim"]:.4f} {bpd}',
      f'  NLL (IWAE-{r["num_samples"]}) {r["nll"]:9.3f} ± {r["nll_stderr"]:.3f} nats  '
      f'{r["nll_bits_per_dim"]:.4f} {bpd}',
      f'  note: {r["note"]}'])


def main(argv=None, prog='python -m vae_jax.core.evaluate'):
  parser = flags.Parser(
      prog, 'Test ELBO and IWAE-k bound of a trained VAE workdir. Prints -ELBO and the '
      'IWAE-k NLL in nats and bits/dim and writes them to <workdir>/eval_iwae5000.json.',
      f'{prog} --workdir=runs/mnist_vae_2d --iwae_samples=5000')
  parser.add_argument('--workdir', required=True, help='the run directory trained in')
  parser.add_argument('--iwae_samples', type=int, default=5000, help='k (default 5000)')
  parser.add_argument('--num_examples', type=int, default=0,
                      help='evaluate only the first N test images (0 = all)')
  parser.add_argument('--seed', type=int, default=0, help='PRNG seed of the samples')
  parser.add_argument('--data_dir', default=None,
                      help='directory of IDX files, overriding the run config')
  parser.add_argument('--example_chunk', type=int, default=50,
                      help='examples per chunk (memory grows with example x sample chunk)')
  parser.add_argument('--sample_chunk', type=int, default=100, help='samples per chunk')
  parser.add_argument('--out', default=None,
                      help='JSON output (default <workdir>/eval_iwae<k>[_n<N>][_<precision>].json, '
                           "no precision suffix for 'highest')")
  parser.add_argument('--matmul_precision', default='highest',
                      choices=('highest', 'high', 'default'),
                      help="float32 matmul precision (default 'highest': full float32 on "
                           "every backend; 'default' lets a GPU use TF32, faster, and "
                           'changes the bounds: docs/performance.md)')
  parser.add_argument('--quiet', action='store_true',
                      help='no progress bar (there is none off a terminal either)')
  args = parser.parse_args(argv)
  for name in ('iwae_samples', 'example_chunk', 'sample_chunk'):
    if getattr(args, name) < 1:
      parser.error(f'--{name} must be ≥ 1')
  if args.num_examples < 0:
    parser.error('--num_examples must be ≥ 0')

  from vae_jax.infra import errors
  out = args.out or default_output_path(args.workdir, args.iwae_samples, args.num_examples,
                                          args.matmul_precision)
  partial = partial_path(out)
  with errors.user_errors(), _lock_if_writing(args.workdir, out):
    result = evaluate_workdir(
        args.workdir, num_samples=args.iwae_samples, num_examples=args.num_examples,
        seed=args.seed, data_dir=args.data_dir, example_chunk=args.example_chunk,
        sample_chunk=args.sample_chunk, progress=not args.quiet, progress_file=partial,
        matmul_precision=args.matmul_precision)
    try:
      workdir_lib.atomic_write_text(out, json.dumps(result, indent=2, sort_keys=True) + '\n')
    except OSError as e:
      raise EvaluateError(f'cannot write {out} ({e.strerror}): pass --out to a '
                          'writable path') from e
    if os.path.exists(partial):
      os.remove(partial)
  print(format_result(result))
  print(f'wrote {out}')
  return result


def _lock_if_writing(workdir, out):
  """The workdir's lock when ``out`` goes into it (a run training there is not disturbed)."""
  inside = os.path.isdir(workdir) and os.path.abspath(out).startswith(
      os.path.join(os.path.abspath(workdir), ''))
  return workdir_lib.lock(workdir, 'evaluate') if inside else contextlib.nullcontext()


if __name__ == '__main__':
  main(sys.argv[1:])
