"""Bad input across the public API: a clear error naming the argument, or the
documented sentinel under ``jit`` — never a silent NaN, cast, clip or drop.

Each row of ``CASES`` is (entry point, what is wrong, call, expected exception, a
regular expression the message must match — it names the argument). The items of the
"no silent garbage" review are marked ``[item N]``; each failed on version 1 (it
returned a number or raised from deep inside JAX/LAPACK).
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
from jgen import datasets
from jgen.diffusion import validate as dvalidate

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3)).astype(np.float32)
Y = np.repeat(np.arange(3), 20).astype(np.int32)
SCORES = RNG.normal(size=(5, 3)).astype(np.float32)
LABELS = np.array([0, 1, 2, 0, 1], np.int32)
FAMILIES = {
    "gaussian_nb": lambda: jgen.gaussian_nb(),
    "gaussian_nb_pooled": lambda: jgen.gaussian_nb(pooled=True),
    "lda": lambda: jgen.lda(0.1),
    "qda": lambda: jgen.qda(0.1),
    "logistic": lambda: jgen.logistic_regression(),
}


def _fit(name, x=X, y=Y, **kw):
  return lambda: FAMILIES[name]().fit(x, y, num_classes=kw.pop("num_classes", 3), **kw)


@functools.lru_cache(maxsize=None)
def _fitted(name):
  model = FAMILIES[name]()
  return model, model.fit(X, Y, num_classes=3)


def _score(name, x):
  model, params = _fitted(name)
  return lambda: model.log_likelihood(params, x)


CASES = []
for fam in FAMILIES:
  CASES += [
      (f"{fam}.fit", "NaN in x", _fit(fam, x=np.where(np.eye(60, 3) > 0, np.nan, X)),
       ValueError, r"x contains \d+ non-finite"),
      (f"{fam}.fit", "inf in x", _fit(fam, x=np.where(np.eye(60, 3) > 0, np.inf, X)),
       ValueError, r"x contains \d+ non-finite"),
      (f"{fam}.fit", "empty x", _fit(fam, x=X[:0], y=Y[:0]), ValueError,
       r"x must contain at least one example"),
      (f"{fam}.fit", "x of rank 1", _fit(fam, x=X[:, 0]), ValueError, r"x must have rank 2"),
      (f"{fam}.fit", "x without features [item 7]", _fit(fam, x=X[:, :0]), ValueError,
       r"x must have at least one feature"),
      (f"{fam}.fit", "complex x [item 7]", _fit(fam, x=X.astype(np.complex64)), TypeError,
       r"x must be real"),
      (f"{fam}.fit", "float16 x [item 7]", _fit(fam, x=X.astype(np.float16)), TypeError,
       r"x has dtype float16"),
      (f"{fam}.fit", "string x [item 7]", _fit(fam, x=np.full((60, 3), "a")), TypeError,
       r"x must be a numeric array|x must have a real numeric dtype"),
      (f"{fam}.fit", "x and y lengths differ", _fit(fam, y=Y[:-1]), ValueError,
       r"same number of examples"),
      (f"{fam}.fit", "float labels", _fit(fam, y=Y.astype(np.float32)), TypeError,
       r"y must have an integer dtype"),
      (f"{fam}.fit", "label out of range", _fit(fam, y=np.where(Y == 2, 3, Y)), ValueError,
       r"y must lie in \[0, num_classes=3\)"),
      (f"{fam}.fit", "num_classes = 1", _fit(fam, num_classes=1), ValueError,
       r"num_classes must be >= 2"),
      (f"{fam}.fit", "num_classes a float", _fit(fam, num_classes=3.0), TypeError,
       r"num_classes must be a static Python int"),
      (f"{fam}.fit", "x x 1e30 overflows float32 [item 8]", _fit(fam, x=X * 1e30),
       ValueError, r"x has values up to .* overflow float32"),
      (f"{fam}.fit", "x x 1e-20 underflows float32 [item 8]", _fit(fam, x=X * 1e-20),
       ValueError, r"x has values of at most .* underflow float32"),
      (f"{fam}.fit", "negative sample_weight", _fit(fam, sample_weight=-np.ones(60)),
       ValueError, r"sample_weight must be"),
      (f"{fam}.fit", "sample_weight of the wrong length",
       _fit(fam, sample_weight=np.ones(59)), ValueError, r"sample_weight"),
      (f"{fam}.log_likelihood", "wrong feature count", _score(fam, X[:, :2]), ValueError,
       r"x must have last dimension 3"),
      (f"{fam}.log_likelihood", "NaN in x", _score(fam, np.full((2, 3), np.nan)),
       ValueError, r"x contains 6 non-finite"),
      (f"{fam}.log_likelihood", "x = 1e30 overflows [item 8]",
       _score(fam, np.full((2, 3), 1e30, np.float32)), ValueError, r"overflow float32"),
      (f"{fam}.log_likelihood", "params of another family",
       (lambda f=fam: FAMILIES[f]().log_likelihood(
           _fitted("qda" if f != "qda" else "lda")[1], X)), TypeError, r"params must be"),
  ]

CASES += [
    # Degenerate classes.
    ("lda.fit", "constant feature [item 1]", lambda: jgen.lda().fit(
        np.where(np.arange(3) == 1, 0.3, X).astype(np.float32), Y, num_classes=3),
     ValueError, r"pooled within-class covariance is not positive definite"),
    ("qda.fit", "class with one example", lambda: jgen.qda(0.5).fit(
        X, np.concatenate([[1], np.where(Y[1:] == 1, 0, Y[1:])]).astype(np.int32),
        num_classes=3), ValueError, r"class 1 has 1 sample"),
    ("gaussian_nb.fit", "empty class", lambda: jgen.gaussian_nb().fit(
        X, np.where(Y == 2, 0, Y), num_classes=3), ValueError, r"class 2 has no samples"),
    # Hyperparameters.
    ("gaussian_nb", "negative var_smoothing", lambda: jgen.gaussian_nb(-1.0), ValueError,
     r"var_smoothing must be >= 0"),
    ("lda", "shrinkage above 1", lambda: jgen.lda(1.5), ValueError,
     r"shrinkage must lie in \[0, 1\]"),
    ("qda", "negative reg_param", lambda: jgen.qda(-0.1), ValueError,
     r"reg_param must lie in \[0, 1\]"),
    ("logistic_regression", "C <= 0", lambda: jgen.logistic_regression(C=0.0), ValueError,
     r"C must be a number > 0"),
    ("logistic_regression", "max_iter 0", lambda: jgen.logistic_regression(max_iter=0),
     ValueError, r"max_iter must be an int >= 1"),
    # Bayes rule, metrics, calibration.
    ("log_posterior", "integer scores", lambda: jgen.log_posterior(LABELS), TypeError,
     r"log_lik must have a floating dtype"),
    ("log_posterior", "prior of the wrong length",
     lambda: jgen.log_posterior(SCORES, np.log(np.full(2, 0.5))), ValueError, r"log_prior"),
    ("validate_log_prior", "unnormalised prior",
     lambda: jgen.validate_log_prior(np.zeros(3, np.float32), 3), ValueError,
     r"log_prior must be normalised"),
    ("empirical_log_prior", "empty labels [item 7]",
     lambda: jgen.empirical_log_prior(np.zeros(0, np.int32), 3), ValueError, r"y must hold"),
    ("accuracy", "empty inputs [item 7]",
     lambda: jgen.accuracy(np.zeros((0, 3), np.float32), np.zeros(0, np.int32)), ValueError,
     r"must not be empty"),
    ("accuracy", "labels of the wrong shape", lambda: jgen.accuracy(SCORES, LABELS[:3]),
     ValueError, r"y must have shape \(5,\)"),
    ("expected_calibration_error", "logits instead of probabilities [item 5]",
     lambda: jgen.expected_calibration_error(SCORES, LABELS), ValueError,
     r"probs must be class probabilities"),
    ("expected_calibration_error", "num_bins 0",
     lambda: jgen.expected_calibration_error(np.full((5, 3), 1 / 3), LABELS, num_bins=0),
     ValueError, r"num_bins must be a positive int"),
    ("negative_log_likelihood", "label out of range",
     lambda: jgen.negative_log_likelihood(SCORES, LABELS + 1), ValueError,
     r"y must lie in \[0, num_classes=3\)"),
    ("temperature_scale", "negative temperature [item 5]",
     lambda: jgen.temperature_scale(SCORES, -1.0), ValueError,
     r"temperature must be a finite number > 0"),
    ("temperature_scale", "zero temperature [item 5]",
     lambda: jgen.temperature_scale(SCORES, 0.0), ValueError, r"temperature must be"),
    ("temperature_scale", "NaN temperature [item 5]",
     lambda: jgen.temperature_scale(SCORES, float("nan")), ValueError, r"temperature must"),
    ("fit_temperature", "empty [item 7]",
     lambda: jgen.fit_temperature(np.zeros((0, 3), np.float32), np.zeros(0, np.int32)),
     ValueError, r"y must hold at least one label"),
    # Bounds.
    ("zero_one_bound", "0-1 gap above 1 [item 9]", lambda: jgen.bounds.zero_one_bound(
        "logistic", 0.1, num_classes=3, zero_one_gap=5.0), ValueError,
     r"zero_one_gap must lie in \[0, 1\]"),
    ("zero_one_bound", "negative excess", lambda: jgen.bounds.zero_one_bound(
        "logistic", -0.1, num_classes=3), ValueError, r"surrogate_excess must be >= 0"),
    # Datasets.
    ("datasets.load_digits", "integer dtype truncates [item 9]",
     lambda: datasets.load_digits(dtype=np.int32), TypeError, r"dtype must be a floating"),
    ("datasets.load", "unknown name", lambda: datasets.load("nope"), ValueError, r"nope"),
    # Mesh.
    ("parallel.make_mesh", "more devices than exist",
     lambda: jgen.parallel.make_mesh(data=64, classes=64), ValueError, r"needs 4096 devices"),
    ("parallel.fit_data_parallel", "not a Classifier",
     lambda: jgen.parallel.fit_data_parallel("qda", X, Y, jgen.parallel.make_mesh(),
                                             num_classes=3), TypeError, r"jgen.Classifier"),
    # Diffusion options and training configuration.
    ("diffusion.TrainConfig", "unknown weighting [item 6]",
     lambda: jgen.diffusion.TrainConfig(weighting="foo"), ValueError, r"weighting"),
    ("diffusion.TrainConfig", "unknown loss [item 6]",
     lambda: jgen.diffusion.TrainConfig(loss="foo"), ValueError, r"loss"),
    ("diffusion.TrainConfig", "num_steps 0 [item 6]",
     lambda: jgen.diffusion.TrainConfig(num_steps=0), ValueError, r"num_steps"),
    ("diffusion.options", "unknown loss name", lambda: dvalidate.check_options("elbo", "l3"),
     ValueError, r"loss"),
]


# Version 2 review: scores to labels, numeric options, keys, errors from inside
# libraries (each of these returned a number or raised from JAX/optax/orbax/json).
_DEN, _ORACLE = jgen.diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
_NAN_ROW = np.where(np.arange(5)[:, None] == 2, np.nan, SCORES).astype(np.float32)
_INF_ROW = np.where(np.arange(5)[:, None] == 4, -np.inf, SCORES).astype(np.float32)
_POS_INF = np.where(np.eye(5, 3) > 0, np.inf, SCORES).astype(np.float32)
_LR = jgen.logistic_regression()
_KEY = jax.random.key(0)
_MIX = jgen.simulate.zheng_mixture(3, 4)


def _minibatch(**kw):
  args = dict(num_classes=3, batch_size=8, num_steps=2)
  key = kw.pop("key", _KEY)
  return lambda: jgen.logistic.fit_minibatch(_LR, key, X, Y, **{**args, **kw})


def _classify(batch=False, **kw):
  key, x = kw.pop("key", _KEY), kw.pop("x", np.eye(3, dtype=np.float32))
  opts = {"num_t": 4, **kw}
  if batch:
    return lambda: jgen.diffusion.batch_classify(key, _DEN, _ORACLE, x, 3, **opts)
  return lambda: jgen.diffusion.classify(key, _DEN, _ORACLE, x[0], 3, **opts)


CASES += [
    # Scores to labels: a NaN row, a row all -inf, a +inf score.
    *[(entry, what, call, ValueError, r"cannot be classified")
      for what, scores in [("NaN row", _NAN_ROW), ("row all -inf", _INF_ROW),
                           ("+inf score", _POS_INF)]
      for entry, call in [
          ("predict", lambda s=scores: jgen.predict(s)),
          ("log_posterior", lambda s=scores: jgen.log_posterior(s)),
          ("accuracy", lambda s=scores: jgen.accuracy(s, LABELS)),
          ("negative_log_likelihood",
           lambda s=scores: jgen.negative_log_likelihood(s, LABELS)),
          ("fit_temperature", lambda s=scores: jgen.fit_temperature(s, LABELS)),
          ("parallel.bayes_reduce", lambda s=scores: jgen.parallel.bayes_reduce(
              s, jgen.parallel.make_mesh(classes=4), num_classes=3)),
      ]],
    ("log_posterior", "NaN in the log-prior", lambda: jgen.log_posterior(
        SCORES, np.array([np.nan, 0.0, 0.0], np.float32)), ValueError,
     r"log_prior must not contain NaN or \+inf"),
    ("log_posterior", "+inf in the log-prior", lambda: jgen.log_posterior(
        SCORES, np.array([np.inf, 0.0, 0.0], np.float32)), ValueError, r"log_prior"),
    ("diffusion.classify", "denoiser NaN for every class", lambda: jgen.diffusion.classify(
        _KEY, _DEN, jax.tree.map(lambda a: a * np.nan, _ORACLE), np.eye(3)[0], 3,
        num_t=4), ValueError, r"cannot be classified"),
    ("diffusion.batch_classify", "denoiser NaN for every class",
     lambda: jgen.diffusion.batch_classify(
         _KEY, _DEN, jax.tree.map(lambda a: a * np.nan, _ORACLE), np.eye(3), 3, num_t=4),
     ValueError, r"3 row\(s\) that cannot be classified"),
    # Metrics refuse what is not a label.
    ("accuracy", "float labels 2.5", lambda: jgen.accuracy(LABELS, LABELS + 0.5), TypeError,
     r"y must have an integer dtype"),
    ("accuracy", "negative labels", lambda: jgen.accuracy(LABELS, LABELS - 1), ValueError,
     r"y must hold class labels >= 0"),
    ("accuracy", "label out of range", lambda: jgen.accuracy(SCORES, LABELS + 1),
     ValueError, r"y must lie in \[0, num_classes=3\)"),
    ("accuracy", "predictions below -1", lambda: jgen.accuracy(LABELS - 2, LABELS),
     ValueError, r"scores given as integer predictions must be labels >= 0"),
    ("accuracy", "arguments of different lengths",
     lambda: jgen.accuracy(LABELS, LABELS[:3]), ValueError, r"must have the shape of y"),
    ("accuracy", "string scores", lambda: jgen.accuracy("abc", LABELS), TypeError,
     r"scores must be a numeric array"),
    ("expected_calibration_error", "NaN probabilities",
     lambda: jgen.expected_calibration_error(
         np.where(np.eye(5, 3) > 0, np.nan, 1 / 3), LABELS), ValueError,
     r"probs must be class probabilities"),
    # Numeric options.
    ("logistic.fit_minibatch", "negative learning rate", _minibatch(learning_rate=-0.1),
     ValueError, r"learning_rate must be a finite number > 0"),
    ("logistic.fit_minibatch", "NaN learning rate", _minibatch(learning_rate=np.nan),
     ValueError, r"learning_rate must be a finite number > 0"),
    ("logistic.fit_minibatch", "batch size 2.5", _minibatch(batch_size=2.5), TypeError,
     r"batch_size must be an int"),
    ("logistic.fit_minibatch", "num_steps -1", _minibatch(num_steps=-1), ValueError,
     r"num_steps must be an int >= 1"),
    ("logistic.fit_minibatch", "plain int key", _minibatch(key=0), TypeError,
     r"key must be a PRNG key: pass jax.random.key\(seed\)"),
    ("logistic.fit_minibatch", "NaN initial point", _minibatch(
        init=jgen.logistic.LogisticParams(jnp.full((3, 3), jnp.nan), jnp.zeros(3))),
     ValueError, r"init.weights contains 9 non-finite"),
    ("logistic.objective", "weights for other features", lambda: jgen.logistic.objective(
        _LR, jgen.logistic.LogisticParams(jnp.zeros((2, 3)), jnp.zeros(3)), X, Y),
     ValueError, r"params.weights must have shape \(D, K\)"),
    ("diffusion.TrainConfig", "negative learning rate",
     lambda: jgen.diffusion.TrainConfig(learning_rate=-1e-3), ValueError,
     r"TrainConfig.learning_rate must be a finite number > 0"),
    ("diffusion.TrainConfig", "NaN learning rate",
     lambda: jgen.diffusion.TrainConfig(learning_rate=float("nan")), ValueError,
     r"TrainConfig.learning_rate"),
    ("diffusion.TrainConfig", "batch size 2.5",
     lambda: jgen.diffusion.TrainConfig(batch_size=2.5), TypeError,
     r"TrainConfig.batch_size must be a static Python int"),
    ("diffusion.classify", "negative num_t", _classify(num_t=-4), ValueError,
     r"num_t must be >= 1"),
    ("diffusion.classify", "plain int key", _classify(key=0), TypeError,
     r"key must be a PRNG key: pass jax.random.key\(seed\)"),
    ("diffusion.classify", "schedule as a string", _classify(schedule="linear"), TypeError,
     r"schedule must be a jgen.diffusion Schedule"),
    ("diffusion.batch_classify", "plain int key", _classify(True, key=0), TypeError,
     r"pass jax.random.key\(seed\)"),
    ("diffusion.batch_classify", "no examples", _classify(True, x=np.zeros((0, 3))),
     ValueError, r"x must hold at least one example"),
    ("diffusion.prior_kl", "schedule None", lambda: jgen.diffusion.prior_kl(
        jnp.ones(3), None), TypeError, r"schedule must be a jgen.diffusion Schedule"),
    ("diffusion.class_errors", "plain int key", lambda: jgen.diffusion.class_errors(
        0, _DEN, _ORACLE, jnp.ones(3), 3, num_t=4,
        schedule=jgen.diffusion.linear_schedule()), TypeError, r"pass jax.random.key"),
    ("diffusion.bits_per_dim", "negative dimensions",
     lambda: jgen.diffusion.bits_per_dim(-10.0, -5), ValueError,
     r"num_dims must be an int >= 1"),
    ("simulate.sample", "negative number of examples",
     lambda: jgen.simulate.sample(_KEY, _MIX, -5), ValueError,
     r"num_examples must be an int >= 1"),
    ("simulate.sample", "plain int key", lambda: jgen.simulate.sample(0, _MIX, 5),
     TypeError, r"pass jax.random.key\(seed\)"),
    ("diffusion.gaussian_oracle", "class index outside the classes",
     lambda: _DEN.apply(_ORACLE, jnp.ones(3), jnp.asarray(0.0), 5), ValueError,
     r"y \(the class index\) must lie in \[0, 3\)"),
    ("gaussian_nb", "var_smoothing inf", lambda: jgen.gaussian_nb(float("inf")),
     ValueError, r"var_smoothing must be a finite number"),
    ("gaussian_nb", "var_smoothing a string", lambda: jgen.gaussian_nb("1e-9"), TypeError,
     r"var_smoothing must be a real number"),
    ("qda", "NaN reg_param", lambda: jgen.qda(float("nan")), ValueError,
     r"reg_param must be a finite number"),
    # Errors once raised from inside JAX, orbax or json.
    ("checkpoint.save_pytree", "a string leaf", lambda: jgen.checkpoint.save_pytree(
        "/nonexistent/never-written", {"a": "text"}), TypeError,
     r"tree must hold numeric arrays only; the leaf 'a' is str"),
    ("parallel.class_sharded_scores", "score function with the wrong class count",
     lambda: jgen.parallel.class_sharded_scores(
         lambda p, shared, ids, x: jnp.zeros((x.shape[0], 5)), jnp.zeros((3, 2)),
         jnp.zeros((4, 2)), jgen.parallel.make_mesh(data=2, classes=4), num_classes=3),
     ValueError, r"score_fn must return one score per example and class"),
    ("parallel.class_sharded_log_likelihood", "NaN in x",
     lambda: jgen.parallel.class_sharded_log_likelihood(
         *_fitted("qda"), np.full((4, 3), np.nan, np.float32),
         jgen.parallel.make_mesh(data=2, classes=4)), ValueError,
     r"x contains 12 non-finite"),
]


@pytest.mark.parametrize("entry, what, call, exc, match", CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_raises_a_clear_error(entry, what, call, exc, match):
  del entry, what
  with pytest.raises(exc, match=match):
    call()


def test_logistic_integer_x_is_promoted_not_truncated():
  # [item 3] v1 cast the weights to the input's integer dtype: every logit was 0.
  model, params = _fitted("logistic")
  xi = np.array([[1, 2, 0]], np.int32)
  np.testing.assert_allclose(model.log_likelihood(params, xi),
                             model.log_likelihood(params, xi.astype(np.float32)),
                             rtol=1e-6)
  assert np.any(np.asarray(model.log_likelihood(params, xi)) != 0)


def test_existing_checkpoint_without_overwrite_is_refused(tmp_path):
  jgen.checkpoint.save_pytree(tmp_path / "c", {"w": jnp.arange(3.0)})
  with pytest.raises(FileExistsError, match=r"already exists; pass overwrite=True"):
    jgen.checkpoint.save_pytree(tmp_path / "c", {"w": jnp.zeros(3)}, overwrite=False)


def test_save_model_names_extra_that_is_not_json(tmp_path):
  from flax import nnx
  net = jgen.diffusion.MLPDenoiser((4,), 3, width=8, depth=1, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match=r"extra and schedule must be JSON-serialisable"):
    jgen.checkpoint.save_model(tmp_path / "m", net, extra={"when": object()})
  assert not (tmp_path / "m").exists()


def test_jit_sentinels():
  # Under jit nothing can raise; the documented sentinels are returned instead.
  out = jax.jit(jgen.temperature_scale)(jnp.asarray(SCORES), -1.0)      # [item 5]
  assert np.all(np.asarray(out) == -np.inf)
  prior = jax.jit(jgen.empirical_log_prior, static_argnums=1)(jnp.array([0, 1, 5]), 3)
  assert np.all(np.asarray(prior) == -np.inf)                            # [item 9]
  bound = jax.jit(lambda g: jgen.bounds.zero_one_bound(
      "logistic", 0.1, num_classes=3, zero_one_gap=g))(5.0)
  assert np.isnan(float(bound))
  # Scores to labels: -1 (not a class) for a row with no most likely class.
  for scores, row in [(_NAN_ROW, 2), (_INF_ROW, 4)]:
    labels = np.asarray(jax.jit(jgen.predict)(scores))
    assert labels[row] == -1 and np.all(np.delete(labels, row) >= 0)
    assert float(jax.jit(jgen.accuracy)(scores, labels)) == pytest.approx(0.8)
  # Priors that do not sum to one under jit: NaN prior, every prediction -1.
  fit = jax.jit(lambda x, y: jgen.gaussian_nb().fit(
      x, y, num_classes=3, priors=jnp.array([0.5, 0.5, 0.5])))
  params = fit(X, Y)
  assert np.all(np.isnan(np.asarray(params.log_prior)))
  assert np.all(np.asarray(jgen.predict(jgen.gaussian_nb().log_likelihood(params, X)))
                >= 0)   # only the prior is invalid
  labels = jax.jit(lambda p, x: jgen.predict(jgen.gaussian_nb(), p, x))(params, X)
  assert np.all(np.asarray(labels) == -1)
  # The oracle's class index outside [0, K): NaN, not the nearest class.
  eps = jax.jit(lambda y: _DEN.apply(_ORACLE, jnp.ones(3), jnp.asarray(0.0), y))(5)
  assert np.all(np.isnan(np.asarray(eps)))


def test_fit_temperature_on_uninformative_scores_is_one():
  # [item 5] Scores equal across classes say nothing about T: v1 returned NaN.
  t = jgen.fit_temperature(np.zeros((6, 3), np.float32), np.array([0, 1, 2, 0, 1, 2]))
  assert float(t) == 1.0


def test_checkpoint_never_casts_and_names_the_leaf(tmp_path):
  # [item 4] v1 restored a float leaf into an int target silently.
  jgen.checkpoint.save_pytree(tmp_path / "c", {"w": jnp.arange(3.0)})
  with pytest.raises(jgen.checkpoint.CheckpointError, match=r"w: checkpoint dtype float"):
    jgen.checkpoint.restore_pytree(tmp_path / "c", {"w": jnp.zeros(3, jnp.int32)})
  with pytest.raises(jgen.checkpoint.CheckpointError, match=r"w: checkpoint shape"):
    jgen.checkpoint.restore_pytree(tmp_path / "c", {"w": jnp.zeros(4)})


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", json.dumps({"x": 1})])
def test_damaged_model_config_is_a_checkpoint_error(tmp_path, content):
  # [item 4] v1 surfaced JSONDecodeError / KeyError.
  (tmp_path / "config.json").write_text(content)
  with pytest.raises(jgen.checkpoint.CheckpointError, match="config.json"):
    jgen.checkpoint.load_model(tmp_path)


def test_save_model_refuses_what_load_model_cannot_read(tmp_path):
  # [item 4] v1 wrote schedule specs and params= that load_model could not read back.
  from flax import nnx
  net = jgen.diffusion.MLPDenoiser((4,), 3, width=8, depth=1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="schedule spec"):
    jgen.checkpoint.save_model(tmp_path / "a", net, schedule={"name": "nope"})
  with pytest.raises(ValueError, match="params must have the structure"):
    jgen.checkpoint.save_model(tmp_path / "b", net, params={"w": jnp.zeros(2)})
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_linear_gap_accepts_one_feature():
  # [item 9] v1 rejected a valid one-feature input as "scores".
  gap = jgen.bounds.linear_minimizability_gap(
      "logistic", jnp.ones((4, 1)), jnp.full((4, 3), 1 / 3), num_steps=5)
  assert np.isfinite(float(gap.gap))


def test_pooled_nb_on_tiny_data_is_not_silently_at_chance():
  # [item 8] v1 fitted x * 1e-20 silently (the absolute epsilon swamped every
  # variance: chance accuracy); now the underflow is named. In float64 the same data
  # is representable and fits.
  with pytest.raises(ValueError, match="underflow float32"):
    jgen.gaussian_nb(pooled=True).fit(X * 1e-20, Y, num_classes=3)
  x64 = (X.astype(np.float64) + 3.0 * Y[:, None]) * 1e-20   # separated classes
  model = jgen.gaussian_nb(var_smoothing=0.0, pooled=True)
  params = model.fit(x64, Y, num_classes=3)
  assert float(jgen.accuracy(jgen.log_posterior(model, params, x64), Y)) > 0.9


def test_checked_raises_the_eager_errors_under_jit():
  # jgen.checked stages the value checks that jit would skip (checkify).
  fit = jgen.checked(lambda x, y, w: jgen.gaussian_nb().fit(x, y, num_classes=3,
                                                             sample_weight=w))
  w = np.ones(60, np.float32)
  assert fit(X, Y, w).means.shape == (3, 3)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=3\)"):
    fit(X, np.where(Y == 2, 7, Y), w)
  with pytest.raises(ValueError, match="x contains non-finite"):
    fit(np.where(np.eye(60, 3) > 0, np.nan, X).astype(np.float32), Y, w)
  with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
    fit(X, Y, -w)
  scale = jgen.checked(jgen.temperature_scale)
  with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
    scale(jnp.asarray(SCORES), -1.0)
