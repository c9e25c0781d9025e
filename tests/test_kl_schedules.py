"""KL schedules (warm-up, cyclical) and free bits: formulas, gradients, training, config."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from vae_jax.core import config as config_lib
from vae_jax.core import experiment, losses, objective, train
from vae_jax.infra import workdir as workdir_lib


def betas(obj, steps):
  return np.array([float(obj.beta(jnp.asarray(s, jnp.int32))) for s in steps])


# ----------------------------------------------------------------------------
# β over the steps, against the papers' formulas written out in NumPy
# ----------------------------------------------------------------------------
def test_warmup_is_linear_then_flat_and_zero_steps_is_constant():
  obj = objective.Objective(kl_weight=2.0, kl_warmup_steps=40)
  steps = np.arange(120)
  np.testing.assert_allclose(betas(obj, steps), 2.0 * np.minimum(1.0, steps / 40), rtol=1e-6)
  constant = objective.Objective(kl_weight=0.7)
  np.testing.assert_allclose(betas(constant, [0, 1, 500]), 0.7, rtol=1e-7)
  assert obj.beta(None) == 2.0  # evaluation: the full weight


def fu_et_al(total, cycles, ratio, weight):
  """Fu et al. 2019 eq. 5 with their 1-based t: τ = mod(t-1, ⌈T/M⌉) / (T/M)."""
  out = []
  for t in range(1, total + 1):
    tau = ((t - 1) % math.ceil(total / cycles)) / (total / cycles)
    out.append(weight * (tau / ratio if tau <= ratio else 1.0))
  return np.array(out)


@pytest.mark.parametrize('total,cycles,ratio,weight', [
    (100, 4, 0.5, 1.0), (1000, 4, 0.5, 1.0), (99, 4, 0.5, 1.0),   # T not a multiple of M
    (60, 3, 1.0, 0.5), (50, 1, 0.25, 2.0), (7, 7, 0.5, 1.0)])
def test_cyclical_matches_fu_et_al(total, cycles, ratio, weight):
  obj = objective.Objective(kl_weight=weight, kl_schedule='cyclical', kl_cycles=cycles,
                            kl_cycle_ratio=ratio, total_steps=total)
  np.testing.assert_allclose(betas(obj, range(total)),
                             fu_et_al(total, cycles, ratio, weight), rtol=1e-6, atol=1e-7)


def test_cyclical_known_values():
  # T = 100, M = 4, R = 0.5: cycles of 25 steps, β rises over 12.5 of them.
  obj = objective.Objective(kl_schedule='cyclical', kl_cycles=4, kl_cycle_ratio=0.5,
                            total_steps=100)
  got = betas(obj, [0, 5, 12, 13, 24, 25, 30, 99])
  np.testing.assert_allclose(got, [0, 0.4, 0.96, 1, 1, 0, 0.4, 1], rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------
# Free bits
# ----------------------------------------------------------------------------
# Batch of 4, 3 latent dims: dim 0 close to the prior (KL_0 ~ 0.03 nats),
# dims 1 and 2 far from it (KL_d > 1 nat).
MEAN = jnp.array([[0.1, 1.5, -2.0], [-0.2, 1.0, -1.5], [0.15, 2.0, -1.0], [0.05, 1.2, -2.5]])
LOGVAR = jnp.array([[-0.1, -1.0, -2.0], [0.1, -1.5, -1.0], [0.05, -0.5, -2.5], [-0.2, -1.2, -1.5]])
LAMBDA = 0.5


def test_free_bits_value_is_sum_of_max_over_dims():
  per_dim = np.asarray(losses.gaussian_kl_per_dim(MEAN, LOGVAR), np.float64)
  kl_d = per_dim.mean(axis=0)
  assert kl_d[0] < LAMBDA < kl_d[1] and kl_d[2] > LAMBDA  # the case the test needs
  got = float(jnp.mean(losses.free_bits_kl(losses.gaussian_kl_per_dim(MEAN, LOGVAR), LAMBDA)))
  assert got == pytest.approx(np.sum(np.maximum(LAMBDA, kl_d)), rel=1e-6)
  everything_free = losses.free_bits_kl(losses.gaussian_kl_per_dim(MEAN, LOGVAR), 100.0)
  np.testing.assert_allclose(everything_free, 300.0)


def test_free_bits_gradient_is_zero_below_and_the_plain_kl_gradient_above():
  def free(mean, logvar):
    return jnp.mean(losses.free_bits_kl(losses.gaussian_kl_per_dim(mean, logvar), LAMBDA))

  def plain(mean, logvar):
    return jnp.mean(losses.gaussian_kl(mean, logvar))

  g_free = jax.grad(free, argnums=(0, 1))(MEAN, LOGVAR)
  g_plain = jax.grad(plain, argnums=(0, 1))(MEAN, LOGVAR)
  for gf, gp in zip(g_free, g_plain):
    gf, gp = np.asarray(gf), np.asarray(gp)
    assert np.all(gf[:, 0] == 0.0)                     # below λ: exactly no gradient
    np.testing.assert_array_equal(gf[:, 1:], gp[:, 1:])  # above λ: the KL's own
    assert np.all(gp[:, 0] != 0.0)                     # guards against a vacuous check


def test_free_bits_through_the_objective_silence_dims_below_lambda():
  """In a real VAE's loss, the posterior columns of the dims below λ get no KL gradient."""
  c = tiny_config(latent_dim=4)
  model = experiment.build_model(c)
  x = jax.random.uniform(jax.random.key(0), (16, 28, 28, 1))
  params = model.init(jax.random.key(1), x, jax.random.key(2))['params']
  mean, logvar = model.apply({'params': params}, x, method='encode')
  kl_d = np.asarray(losses.gaussian_kl_per_dim(mean, logvar)).mean(axis=0)
  lam = float(np.median(kl_d))  # two dims below, two above
  below = kl_d < lam
  assert below.sum() == 2

  def kl_part(p, free_bits):
    obj = objective.Objective(kl_weight=1.0, free_bits=free_bits)
    t = objective.loss_terms(model, p, x, x, jax.random.key(3), obj, train=True,
                             step=jnp.asarray(0))
    return jnp.mean(t['loss'] - t['recon'])   # β times the KL term

  g = jax.grad(kl_part)(params, lam)['posterior']['kernel']
  g0 = jax.grad(kl_part)(params, 0.0)['posterior']['kernel']
  cols = np.concatenate([below, below])           # mean columns, then logvar columns
  assert np.all(np.asarray(g)[:, cols] == 0.0)
  np.testing.assert_allclose(np.asarray(g)[:, ~cols], np.asarray(g0)[:, ~cols], rtol=1e-6)
  assert np.all(np.abs(np.asarray(g0)[:, cols]).max(axis=0) > 0)


def test_free_bits_leave_evaluation_on_the_plain_kl():
  c = tiny_config(free_bits=3.0)
  model = experiment.build_model(c)
  x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
  params = model.init(jax.random.key(1), x, jax.random.key(2))['params']
  obj = objective.Objective.from_config(c)
  t = objective.loss_terms(model, params, x, x, jax.random.key(3), obj, train=False)
  np.testing.assert_allclose(t['loss'], t['recon'] + t['kl'], rtol=1e-6)


# ----------------------------------------------------------------------------
# Training with each schedule
# ----------------------------------------------------------------------------
SCHEDULES = {
    'constant': ({}, lambda s: np.ones_like(s, np.float64)),
    'warmup': ({'kl_warmup_steps': 5}, lambda s: np.minimum(1.0, s / 5)),
    'cyclical': ({'kl_schedule': 'cyclical', 'kl_cycles': 2},
                 lambda s: fu_et_al(8, 2, 0.5, 1.0)[s]),
    'free_bits': ({'free_bits': 0.5}, lambda s: np.ones_like(s, np.float64)),
    'cyclical+free_bits': ({'kl_schedule': 'cyclical', 'kl_cycles': 2, 'free_bits': 0.5},
                           lambda s: fu_et_al(8, 2, 0.5, 1.0)[s]),
}


@pytest.mark.parametrize('name', list(SCHEDULES))
def test_a_short_training_logs_the_beta_in_effect(tmp_path, data_dir, name):
  overrides, expected = SCHEDULES[name]
  c = tiny_config(data_dir, log_every_steps=1, **overrides)   # one train row per step
  result = train.train_and_evaluate(c, str(tmp_path))
  rows = workdir_lib.read_metrics(str(tmp_path))
  tr = [r for r in rows if r['split'] == 'train']
  assert [r['step'] for r in tr] == list(range(1, 9))
  # Row of step s holds the update made at state.step = s - 1.
  np.testing.assert_allclose([r['kl_weight'] for r in tr],
                             expected(np.arange(8)), rtol=1e-6, atol=1e-7)
  for r in tr:
    assert np.isfinite(r['loss'])
    if 'free_bits' not in overrides:  # loss = recon + β·KL exactly
      assert r['loss'] == pytest.approx(r['recon'] + r['kl_weight'] * r['kl'], rel=1e-5)
    else:  # Σ_d max(λ, KL_d) ≥ max(KL, D·λ), with D = 2 dims and λ = 0.5
      floor = r['recon'] + r['kl_weight'] * max(r['kl'], 2 * 0.5)
      assert r['loss'] >= floor - 1e-5 * abs(floor)
  # The latent diagnostics are reported as before.
  latent = [r for r in rows if r['split'] == 'latent']
  assert len(latent) == 1 and {'active_units', 'kl', 'kl_dim_0', 'kl_dim_1'} <= set(latent[0])
  assert 0 <= latent[0]['active_units'] <= 2
  test = result['test']   # evaluation: full β, plain KL
  assert test['loss'] == pytest.approx(test['recon'] + test['kl'], rel=1e-5)


def test_an_autoencoder_logs_no_kl_weight(tmp_path, data_dir):
  train.train_and_evaluate(tiny_config(data_dir, **{'model.kind': 'autoencoder'}),
                           str(tmp_path))
  tr = [r for r in workdir_lib.read_metrics(str(tmp_path)) if r['split'] == 'train']
  assert tr and all('kl_weight' not in r for r in tr)


# ----------------------------------------------------------------------------
# Config: validation, old workdirs, resuming
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('overrides,message', [
    ({'kl_schedule': 'linear'}, r"config.kl_schedule='linear' is not valid"),
    ({'kl_cycles': 0}, r'config.kl_cycles=0 must be a positive integer'),
    ({'kl_cycle_ratio': 0.0}, r'config.kl_cycle_ratio=0.0 must be in \(0, 1\]'),
    ({'kl_cycle_ratio': 1.5}, r'config.kl_cycle_ratio=1.5 must be in \(0, 1\]'),
    ({'free_bits': -0.1}, r'config.free_bits=-0.1 must be ≥ 0'),
    ({'kl_schedule': 'cyclical', 'kl_warmup_steps': 10},
     r"kl_warmup_steps=10 belongs to kl_schedule='warmup'"),
    ({'free_bits': 0.5, 'model.kind': 'autoencoder'}, r'free_bits=0.5 needs a VAE'),
    ({'kl_schedule': 'cyclical', 'iwae_samples': 5}, r"kl_schedule='cyclical' needs a VAE"),
])
def test_bad_kl_settings_are_one_line_config_errors(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message) as e:
    config_lib.validate(tiny_config(**overrides))
  assert '\n' not in str(e.value)


def test_more_cycles_than_steps_is_refused(data_dir):
  c = tiny_config(data_dir, kl_schedule='cyclical', kl_cycles=9)   # 8 steps
  with pytest.raises(config_lib.ConfigError, match='kl_cycles=9 exceeds the 8 training steps'):
    train.build_experiment(c)


def test_an_old_config_json_loads_with_the_defaults(tmp_path):
  d = workdir_lib.config_to_dict(tiny_config(kl_warmup_steps=30))
  for field in ('kl_schedule', 'kl_cycles', 'kl_cycle_ratio', 'free_bits', 'lr_schedule'):
    del d[field]
  (tmp_path / 'config.json').write_text(json.dumps(d))
  loaded = config_lib.from_workdir(str(tmp_path))
  config_lib.validate(loaded)
  assert (loaded.kl_schedule, loaded.kl_warmup_steps, loaded.free_bits) == ('warmup', 30, 0.0)
  # Resuming it with today's defaults is the same run.
  assert config_lib.differences(d, workdir_lib.config_to_dict(
      tiny_config(kl_warmup_steps=30))) == {}
  # The old run's β is the same as before the fields existed.
  obj = objective.Objective.from_config(loaded, total_steps=8)
  np.testing.assert_allclose(betas(obj, [0, 15, 30, 60]), [0, 0.5, 1, 1], rtol=1e-6)


def test_a_cyclical_run_refuses_a_changed_num_epochs():
  """The cycles are laid over the whole run: a longer run reshapes them."""
  old = workdir_lib.config_to_dict(tiny_config(kl_schedule='cyclical'))
  new = workdir_lib.config_to_dict(tiny_config(kl_schedule='cyclical', num_epochs=2))
  assert config_lib.differences(old, new) == {'num_epochs': (1, 2)}
  warm = workdir_lib.config_to_dict(tiny_config(num_epochs=2))
  assert config_lib.differences(workdir_lib.config_to_dict(tiny_config()), warm) == {}
