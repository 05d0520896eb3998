"""Guidance-conditioned students: w as an input (an embedding added to the time embedding),
trained with w drawn per example, serving any w of their range with one pass per step."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kacjax
from helpers import chain_config, copy_teacher
from kacjax.cli.compare_guidance import compare_guidance
from kacjax.core import guidance
from kacjax.models import build_model
from kacjax.runtime import parallel
from kacjax.training import distill, setup, steps
from kacjax.training.checkpoint import CheckpointError
from kacjax.training.recipe import DistillRecipe
from kacjax.training.trained import Trained


def test_guidance_with_one_weight_per_example_equals_one_call_per_weight():
    apply_velocity = lambda x, t, y: x * (1.0 + t[:, None]) + y[:, None].astype(x.dtype)  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    t, y, w = jnp.linspace(0.1, 0.9, 4), jnp.array([0, 1, 2, 3]), jnp.array([0.0, 0.5, 1.0, 3.0])
    out = guidance.guided(apply_velocity, x, t, y, w, null_label=5)
    for i in range(4):
        one = guidance.guided(apply_velocity, x[i:i + 1], t[i:i + 1], y[i:i + 1], float(w[i]), null_label=5)
        np.testing.assert_allclose(out[i:i + 1], one, rtol=1e-6)


@pytest.mark.parametrize("w_draw,at_each_end", [("uniform", 0.0), ("ends", 0.25)])
def test_w_draws_follow_their_law_on_the_range(w_draw, at_each_end):
    from scipy import stats

    w = np.asarray(steps.draw_w(jax.random.PRNGKey(0), (20000,), (1.0, 4.0), w_draw, jnp.float32))
    assert 1.0 <= w.min() and w.max() <= 4.0
    for end in (1.0, 4.0):  # 5 standard deviations of a binomial fraction of 20,000 draws: 0.015
        assert abs(np.mean(w == end) - at_each_end) < 0.016
    inside = w[(w > 1.0) & (w < 4.0)]
    assert stats.kstest((inside - 1.0) / 3.0, "uniform").pvalue > 1e-3  # the rest: U[1, 4]
    if w_draw == "uniform":  # the draws of the chains distilled before w_draw existed, bit for bit
        np.testing.assert_array_equal(w, jax.random.uniform(jax.random.PRNGKey(0), (20000,), jnp.float32, 1.0, 4.0))


@pytest.mark.parametrize("model_cfg,shape", [
    (dict(name="mlp", hidden=32, depth=2, num_classes=10), (8, 8, 1)),
    (dict(name="unet", ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(), num_heads=1, dropout=0.0,
          num_classes=10), (8, 8, 1)),
])
def test_a_fresh_guidance_embedding_adds_nothing_and_inputs_are_checked(model_cfg, shape):
    """A student made from a fixed-w teacher starts as that teacher at every w (zero-initialised last
    layers, of the embedding and of the w head); a model refuses a w it does not take and asks for one
    it needs."""
    teacher, student = build_model(model_cfg), build_model({**model_cfg, "w_embedding": True, "w_head": True})
    rng = jax.random.PRNGKey(0)
    teacher_params = setup.init_params(teacher, rng, shape)
    params = setup.student_params(student, teacher_params, jax.random.PRNGKey(1), shape)
    assert {"w_embed", "w_out"} <= set(params) and set(teacher_params) < set(params)
    x = jax.random.normal(rng, (3, *shape))
    t, y = jnp.array([0.2, 0.5, 0.9]), jnp.array([1, 2, 10])
    ref = teacher.apply({"params": teacher_params}, x, t, y, train=False)
    for w in (0.0, 1.0, 7.5):
        out = student.apply({"params": params}, x, t, y, jnp.full((3,), w), train=False)
        np.testing.assert_array_equal(out, ref)
    with pytest.raises(ValueError, match="w_embedding=True"):
        student.apply({"params": params}, x, t, y, train=False)
    with pytest.raises(ValueError, match="takes no guidance weight"):
        teacher.apply({"params": teacher_params}, x, t, y, jnp.ones((3,)), train=False)
    with pytest.raises(ValueError, match="needs w_embedding=True"):
        build_model({**model_cfg, "w_head": True}).apply({"params": teacher_params}, x, t, y, train=False)
    assert guidance.Guidance.for_model(student, 3.0).network_passes == 1
    assert guidance.Guidance.for_model(teacher, 3.0).network_passes == 2


def _first_loss(config, teacher_dir):
    teacher = Trained.load(os.path.join(teacher_dir, "teacher"))
    stage = distill.Stage(index=1, teacher_steps=4, student_steps=4, inner_steps=1, num_steps=1, learning_rate=1e-3)
    recipe = DistillRecipe.from_config(config.distill)
    run = setup.stage_run(distill.stage_config(config, stage, recipe, teacher), stage, recipe, teacher)
    batch = parallel.shard_batch(run.data.batch(0), run.mesh)
    return float(run.train_step(run.state, batch)[1]["loss"])


def test_the_first_loss_is_the_guidance_gap_at_the_drawn_weights(teacher_dir):
    """With one Euler sub-step and a fresh student (the teacher's conditional velocity u_y), the target
    is x_t - Delta u_w and the loss is w^2 Delta^2 mean|u_y - u_null|^2: 4 times as large at w = 1 as at
    w = 0.5. A conditioned student whose range is a sliver around one weight has the fixed student's loss."""
    loss = {w: _first_loss(chain_config(inner_method="euler", w=w), teacher_dir) for w in (0.5, 1.0)}
    assert loss[1.0] == pytest.approx(4 * loss[0.5], rel=1e-4) and loss[0.5] > 0
    conditioned = _first_loss(chain_config(inner_method="euler", w=0.5, w_range=(0.5, 0.5 + 1e-7)), teacher_dir)
    assert conditioned == pytest.approx(loss[0.5], rel=1e-4)
    spread = _first_loss(chain_config(inner_method="euler", w=0.5, w_range=(0.0, 1.0)), teacher_dir)
    assert 0 < spread < loss[1.0]  # E[w^2] = 1/3 over U[0, 1]: between the two fixed weights' losses
    # weighting the examples by (1 + w)^-2 leans on the small w, whose gap is small: a smaller loss
    weighted = _first_loss(chain_config(inner_method="euler", w=0.5, w_range=(0.0, 1.0), w_loss_power=2.0),
                           teacher_dir)
    assert 0 < weighted < 0.9 * spread


def test_the_loss_weights_each_example_by_its_guidance():
    squared_error = jax.random.uniform(jax.random.PRNGKey(0), (4, 3, 2))
    w = jnp.array([0.0, 1.0, 2.0, 3.0])
    assert steps.weighted_loss(squared_error, None, 2.0) == jnp.mean(squared_error)  # a fixed-w student
    assert steps.weighted_loss(squared_error, w, 0.0) == jnp.mean(squared_error)  # unweighted, bit for bit
    per_example = np.asarray(squared_error).reshape(4, -1).mean(axis=1)
    weights = (1.0 + np.asarray(w)) ** -1.5
    np.testing.assert_allclose(steps.weighted_loss(squared_error, w, 1.5),
                               np.sum(weights * per_example) / np.sum(weights), rtol=1e-6)
    same_w = jnp.full((4,), 2.0)  # one weight for all: the plain mean
    np.testing.assert_allclose(steps.weighted_loss(squared_error, same_w, 1.5), jnp.mean(squared_error),
                               rtol=1e-6)


def test_a_conditioned_chain_serves_every_weight_of_its_range(tmp_path, teacher_dir):
    copy_teacher(teacher_dir, str(tmp_path))
    cond = chain_config(w_range=(0.0, 2.0), name="cond")
    dirs = distill.distill(cond, str(tmp_path))
    assert [os.path.relpath(d, tmp_path) for d in dirs] == ["distill_cond/stage1_4steps", "distill_cond/stage2_2steps"]
    student = kacjax.load(str(tmp_path), -1, chain="cond")
    assert student.sampling.w_range == (0.0, 2.0) and not student.sampling.w_baked
    key = jax.random.PRNGKey(0)
    outs = {w: student.solve(key, 10, labels=3, w=w) for w in (0.0, 0.5, 2.0)}
    assert {g.network_passes for g in outs.values()} == {2}  # 2 Euler steps, one conditional pass each
    assert np.abs(outs[0.0].x - outs[2.0].x).max() > 0  # w reaches the trained network
    default = student.solve(key, 10, labels=3)  # distill.w
    np.testing.assert_array_equal(default.x, student.solve(key, 10, labels=3, w=1.0).x)
    with pytest.raises(ValueError, match=r"serves w in \[0, 2\]"):
        student.sample(key, 4, w=2.5)
    # a fixed-w chain beside it, in distill/: its student refuses w, as before
    fixed = distill.distill(chain_config(), str(tmp_path))
    assert os.path.basename(os.path.dirname(fixed[-1])) == "distill"
    with pytest.raises(ValueError, match="baked in"):
        kacjax.load(str(tmp_path), -1).sample(key, 4, w=1.0)
    # a chain name holding students of other guidance is refused before any work
    with pytest.raises(CheckpointError, match="another distill.name"):
        distill.distill(chain_config(name="cond"), str(tmp_path))
    with pytest.raises(CheckpointError, match="w_draw='uniform' .the config asks for 'ends'"):  # drawn uniformly
        distill.distill(chain_config(w_range=(0.0, 2.0), name="cond", w_draw="ends"), str(tmp_path))
    with pytest.raises(CheckpointError, match="w_loss_power=0.0 .the config asks for 1.0"):  # loss unweighted
        distill.distill(chain_config(w_range=(0.0, 2.0), name="cond", w_loss_power=1.0), str(tmp_path))
    with pytest.raises(ValueError, match="w_range"):
        distill.check_distill_config(chain_config(w_range=(2.0, 3.0)))  # the default w must lie in the range


@pytest.mark.slow
def test_compare_guidance_scores_one_conditioned_student_against_fixed_ones(tmp_path, teacher_dir):
    copy_teacher(teacher_dir, str(tmp_path))
    config = chain_config(student_steps=(2,), train_steps=(4,), w_range=(0.0, 2.0), name="cond")
    config.evaluate = dict(num_samples=40, teacher_steps=8, guidance_ws=(0.0, 2.0))
    with pytest.raises(ValueError, match="no student"):
        kacjax.load(str(tmp_path), -1, chain="cond")  # a chain not distilled yet: not the teacher
    report = compare_guidance(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "distill_w0")) == sorted(os.listdir(tmp_path / "distill_w2"))
    rows = {(r["w"], r["model"]): r for r in report["rows"]}
    assert set(rows) == {(w, m) for w in (0.0, 2.0) for m in ("teacher", "conditioned student", "fixed-w student")}
    assert rows[(2.0, "teacher")]["network_passes"] == 16 and rows[(0.0, "teacher")]["network_passes"] == 8
    assert rows[(2.0, "conditioned student")]["network_passes"] == 2 == rows[(2.0, "fixed-w student")]["network_passes"]
    assert rows[(2.0, "conditioned student")]["steps"] == 2
    assert rows[(0.0, "teacher")]["rms_to_teacher_endpoint"] == 0.0
    ratio = report["conditioned_over_fixed"][1]
    assert ratio["w"] == 2.0 and ratio["fd_digits"] == pytest.approx(
        rows[(2.0, "conditioned student")]["fd_digits"] / rows[(2.0, "fixed-w student")]["fd_digits"])
    assert json.load(open(tmp_path / "guidance_report.json")) == json.loads(json.dumps(report))
    for ext in ("md", "csv", "png"):
        assert (tmp_path / f"guidance_report.{ext}").is_file()
    with pytest.raises(ValueError, match="guidance_ws"):
        config.evaluate.guidance_ws = (5.0,)
        kacjax.run(config, str(tmp_path), ["compare_guidance"])
