"""A latent-space report for any model: metrics as JSON, a markdown summary, figures.

:func:`latent_report` scores a model given as two functions on NumPy arrays,
so one trained with vae_jax, another JAX library, PyTorch, TensorFlow or a
NumPy PCA is measured the same way:

* ``encode(images [N, H, W, C]) -> codes [N, D]``, or ``-> (codes, logvars)``
  for a Gaussian posterior (the codes are then its means);
* ``decode(codes [N, D]) -> images [N, H, W, C]`` in [0, 1];
* optionally the independent classifier's ``logits_fn(images) -> logits`` and
  ``features_fn(images) -> features`` (vae_jax.analysis.classifier); without them the
  classifier-based metrics are skipped and the report says so.

Everything follows the protocol of vae_jax.analysis.metrics (docs/metrics.md): codes
are encoder outputs, the training codes are the reference, and the samplers
'prior', 'gaussian' and 'gmm' are scored alike (keys ``<sampler>/<metric>``).
It writes into ``outdir``:

* ``latent_report.json``: the metrics (:func:`metrics.latent_metrics`), the
  latent diagnostics of the test codes (active units; KL per dimension when
  ``encode`` returns log-variances), what was skipped and the settings;
* ``latent_report.md``: the same as tables, with the figures;
* ``latent.png`` (test codes; a PCA projection beyond 2 dimensions),
  ``walk.png`` (a straight walk between two test codes of different classes,
  decoded), ``manifold.png`` (2-D codes only: decoded grids over the codes'
  mean ± 4 std) and ``samples.png`` (decoded codes of each sampler).

:func:`report_workdir` does it for a trained vae_jax run; ``vae-jax
latent-report --workdir=W`` is its command line.
"""

import json
import os

import jax
import numpy as np

from vae_jax.analysis import metric_registry as registry
from vae_jax.analysis import metrics, plotting
from vae_jax.core import diagnostics
from vae_jax.analysis import samplers as samplers_lib
from vae_jax.infra import workdir as workdir_lib

JSON_FILE = 'latent_report.json'
MARKDOWN_FILE = 'latent_report.md'
# Training codes the figure's samplers are fitted to: enough for a 10-component
# GMM, cheap for any encoder (the metrics fit theirs on num_train codes).
FIGURE_FIT_CODES = 2000
SAMPLES_PER_ROW = 16

# What the report's tables show (labels and directions: the metric registry).
CONTINUITY_KEYS = ('path_jump_ratio', 'path_confident_share', 'path_class_changes',
                   'lipschitz_p99_relative', 'path_step_mean', 'lipschitz_p99')
SAMPLER_KEYS = ('balanced_confident_share', 'confident_share', 'class_distance', 'class_entropy',
                'hole_share', 'frechet_distance', 'coverage', 'density', 'precision', 'recall')
ARTICLE_KEYS = ('knn_accuracy_gain_over_pca', 'local/class_consistency', 'walk01/walks_with_hole',
                'walk01/hole_past_halfway_share', 'walk01/first_hole_position')


def latent_report(encode, decode, train_images, train_labels, test_images, test_labels,
                  outdir, *, logits_fn=None, features_fn=None, name='model',
                  dataset='mnist', seed=0, batch_size=1000, **metric_options):
  """Scores a model's latent space and writes the JSON, markdown and figures.

  Args:
    encode, decode: the model (module docstring).
    train_images, train_labels, test_images, test_labels: NumPy arrays; images
      ``[N, H, W, C]`` in [0, 1], integer labels (they colour the figures and
      give the kNN class separation).
    outdir: created if needed; existing report files are replaced.
    logits_fn, features_fn: the independent classifier, or None to skip the
      classifier scores and the sample quality.
    name: how the model is called in titles and the summary.
    dataset: 'mnist' or 'fashion_mnist' names the classes in the legends.
    seed: the metrics' PRNG seed; models scored with the same seed see the
      same images, pairs and noise.
    batch_size: ``encode`` / ``decode`` get at most this many inputs at a time.
    metric_options: keyword arguments of :func:`metrics.latent_metrics`
      (e.g. ``num_samples``, ``num_paths``) to shrink or grow the protocol.

  Returns:
    the report dict that was written to ``latent_report.json``.
  """
  os.makedirs(outdir, exist_ok=True)
  key = jax.random.key(seed)
  scores = metrics.latent_metrics(
      encode, decode, train_images, train_labels, test_images, test_labels, key,
      classifier_fn=logits_fn, features_fn=features_fn, batch_size=batch_size,
      **metric_options)
  codes, logvar = metrics.encode_codes(encode, test_images, batch_size)
  fit_codes, _ = metrics.encode_codes(encode, np.asarray(train_images)[:FIGURE_FIT_CODES],
                                      batch_size)
  decode_fn = lambda z: metrics.decode_codes(decode, z, batch_size)
  figures = write_figures(decode_fn, codes, np.asarray(test_labels), fit_codes, outdir,
                          name=name, dataset=dataset, key=jax.random.fold_in(key, 1))
  report = {
      'name': name, 'data': dataset, 'latent_dim': int(codes.shape[1]),
      'num_train_images': int(len(train_images)), 'num_test_images': int(len(test_images)),
      'metrics': scores,
      'diagnostics': diagnostics.summarize(codes, logvar, per_dim=codes.shape[1] <= 64),
      'skipped': _skipped(logits_fn, features_fn),
      'figures': figures,
      'settings': {'seed': seed, 'batch_size': batch_size, **metric_options},
  }
  # Python's JSON, as the study's summary: an infinite score is written Infinity.
  workdir_lib.atomic_write_text(os.path.join(outdir, JSON_FILE),
                                json.dumps(report, indent=2, sort_keys=True) + '\n')
  workdir_lib.atomic_write_text(os.path.join(outdir, MARKDOWN_FILE), markdown(report))
  return report


def _skipped(logits_fn, features_fn):
  skipped = []
  if logits_fn is None:
    skipped.append('classifier scores (`path_confident_share`, `path_class_changes`, '
                   '`<sampler>/balanced_confident_share`, `confident_share`, `class_distance`, '
                   '`mean_max_prob`, `class_entropy`): no classifier `logits_fn` given')
  if features_fn is None:
    skipped.append('sample quality (`<sampler>/frechet_distance`, `coverage`, `density`, '
                   '`precision`, `recall`): no classifier `features_fn` given')
  return skipped


# ----------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------
def write_figures(decode_fn, codes, labels, fit_codes, outdir, *, name, dataset, key):
  """Writes the report's PNGs into ``outdir``; returns their file names.

  ``codes`` / ``labels``: test codes and their classes; ``fit_codes``: training
  codes the samplers of ``samples.png`` are fitted to.
  """
  project = plotting.projection_2d(codes)
  pca = ' (PCA)' if codes.shape[1] > 2 else ''
  figures = {'latent.png': plotting.latent_figure(project(codes), labels, dataset,
                                                  f'test codes{pca}: {name}'),
             'walk.png': _walk_figure(decode_fn, codes, labels, project, name, dataset)}
  if codes.shape[1] == 2:
    # The codes' own spread, not N(0, I): the same grid suits any model's scale.
    figures['manifold.png'] = plotting.manifold_figure(
        decode_fn, codes, labels, dataset, name, center=tuple(codes.mean(0)),
        scale=tuple(codes.std(0)))
  figures['samples.png'] = _samples_figure(decode_fn, fit_codes, name, key)
  for file_name, fig in figures.items():
    plotting.save(fig, os.path.join(outdir, file_name))
  return list(figures)


def _walk_figure(decode_fn, codes, labels, project, name, dataset):
  """From the first test code to the first one of another class."""
  other = np.flatnonzero(labels != labels[0])
  end = int(other[0]) if other.size else len(codes) - 1
  panel = {'name': name, 'codes': codes, 'labels': labels, 'z0': codes[0],
           'z1': codes[end], 'decode_fn': decode_fn, 'project': project}
  return plotting.walk_figure(
      [panel], dataset, f'walk from test code 0 (class {labels[0]}) to {end} '
      f'(class {labels[end]})')


def _samples_figure(decode_fn, fit_codes, name, key):
  rows = []
  for i, sampler in enumerate(samplers_lib.SAMPLERS):
    fit_key, draw_key = jax.random.split(jax.random.fold_in(key, i))
    z = samplers_lib.make_sampler(sampler, fit_codes, fit_key)(draw_key, SAMPLES_PER_ROW)
    rows.append(decode_fn(z))
  return plotting.image_rows_figure(rows, list(samplers_lib.SAMPLERS),
                                    f'decoded samples of each sampler: {name}')


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------
def _fmt(value):
  if value is None:
    return '–'
  if isinstance(value, float) and not np.isfinite(value):
    return '∞' if value > 0 else str(value)
  return f'{value:.4g}'


def markdown(report):
  """The summary of a :func:`latent_report` dict, as markdown."""
  m, d = report['metrics'], report['diagnostics']
  lines = [f'# Latent-space report: {report["name"]}', '',
           f'{report["data"]}, {report["latent_dim"]}-D codes, scored on '
           f'{report["num_train_images"]} training and {report["num_test_images"]} test '
           'images under the protocol of docs/metrics.md (codes = encoder outputs, '
           f'training codes as the reference; {registry.ARROWS[registry.GREATER]} / '
           f'{registry.ARROWS[registry.LESS]}: higher / lower is better).', '',
           '## Continuity (walks between test codes of two classes)', '',
           '| metric | value | | what |', '|---|---:|---|---|']
  lines += [f'| `{k}` | {_fmt(m[k])} | {registry.arrow(k)} | '
            f'{registry.header(k, arrow_sign=False)} |' for k in CONTINUITY_KEYS if k in m]
  lines += ['', '## Completeness and sample quality, per sampler', '',
            '| sampler | ' + ' | '.join(f'`{k}` {registry.arrow(k)}' for k in SAMPLER_KEYS)
            + ' |', '|---|' + '---:|' * len(SAMPLER_KEYS)]
  samplers = [s for s in samplers_lib.SAMPLERS if any(k.startswith(f'{s}/') for k in m)]
  lines += [f'| {s} | ' + ' | '.join(_fmt(m.get(f'{s}/{k}')) for k in SAMPLER_KEYS)
            + ' |' for s in samplers]
  lines += ['', '## Class separation and codes', '',
            f'* `knn_accuracy` {registry.arrow("knn_accuracy")}: {_fmt(m["knn_accuracy"])} '
            '(k-NN vote of the training '
            'codes, normalised units)',
            f'* `code_scale`: {_fmt(m["code_scale"])} (RMS spread per dimension, raw units)']
  # The article's remaining claims (article_metrics.py), where they were computed.
  lines += [f'* `{k}` {registry.arrow(k)}'.rstrip() + f': {_fmt(m[k])} '
            f'({registry.header(k, arrow_sign=False)})' for k in ARTICLE_KEYS if k in m]
  lines += [
            f'* active units: {int(d["active_units"])} of {int(d["latent_dim"])} '
            '(Var of the code over test images > 0.01)']
  if 'kl' in d:
    lines.append(f'* KL(q(z|x) ‖ N(0, I)): {_fmt(d["kl"])} nats per test image')
  if report['skipped']:
    lines += ['', '## Skipped', ''] + [f'* {s}' for s in report['skipped']]
  lines += ['', '## Figures', ''] + [f'![{f[:-4]}]({f})' for f in report['figures']]
  return '\n'.join(lines) + '\n'


# ----------------------------------------------------------------------------
# A trained vae_jax workdir
# ----------------------------------------------------------------------------
def report_workdir(workdir, outdir=None, *, classifier_path=None, seed=0, data_dir=None,
                   log=None, **metric_options):
  """:func:`latent_report` of the latest checkpoint in ``workdir``.

  Restores the parameters as ``vae-jax plot`` does
  (:func:`experiment.restore`) and scores the run's own
  training and test data. With ``classifier_path`` the independent classifier
  is loaded from it, or trained on the real training images and saved there
  first (minutes); without it the classifier-based metrics are skipped.
  ``outdir`` defaults to ``workdir/latent_report``.
  """
  from vae_jax.analysis import classifier  # heavy: only here
  from vae_jax.core import data, experiment, latent

  config, model, params, _ = experiment.restore(workdir)
  if data_dir:
    config.data.dir = data_dir
  train_images, train_labels = data.load_split(config.data, 'train')
  test_images, test_labels = data.load_split(config.data, 'test')
  logits_fn = features_fn = None
  if classifier_path:
    clf_params, meta = classifier.train_or_load(
        classifier_path, config.data.name, data_dir=config.data.dir or None, log=log)
    logits_fn = classifier.make_logits_fn(clf_params, meta)
    features_fn = classifier.make_features_fn(clf_params, meta)

  def encode(images):
    mean, logvar = latent.encode(model, params, images)
    return mean if logvar is None else (mean, logvar)

  return latent_report(
      encode, lambda z: latent.decode(model, params, z), train_images,
      train_labels, test_images, test_labels,
      outdir or os.path.join(workdir, 'latent_report'), logits_fn=logits_fn,
      features_fn=features_fn, dataset=config.data.name, seed=seed,
      name=f'{config.model.kind} ({config.model.family}), {config.data.name}, '
           f'seed {config.seed}', **metric_options)
