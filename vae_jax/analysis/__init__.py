"""Analysis of trained models: what their latent spaces and samples are worth.

Owns the latent-space metrics (``metrics``), the samplers every model is
scored with (``samplers``), sample quality (``sample_quality``), exact
nearest neighbours (``neighbors``), the independent classifier
(``classifier``), the latent report of any model (``latent_report``), every
metric's label, direction, unit and decimals (``metric_registry``), the
metrics' values on real data (``real_reference``), the statistics that turn
per-seed values into verdicts (``verdicts``: paired tests, Holm, equivalence,
power) and quality gates (``gates``), and every figure (``plotting``).

May import: ``vae_jax.core``, ``vae_jax.infra``.
"""
