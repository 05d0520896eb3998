"""Endpoint-only distillation: the step itself, the chain plan, provenance, resume, and what it buys."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kacjax
from helpers import chain_config, collectives_in_loops, copy_teacher, tiny_config
from kacjax.core import samplers
from kacjax.core.guidance import Guidance, velocity_field
from kacjax.evaluation.generator import Generator
from kacjax.runtime import parallel
from kacjax.training import distill, rundir, setup, steps, train_state
from kacjax.training.checkpoint import CheckpointError, Checkpointer
from kacjax.training.recipe import LOSS_SPACES, X_SOURCES, DistillRecipe
from kacjax.training.teacher import train
from kacjax.training.trained import Trained


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(student_steps=(3,), train_steps=(1,)), "whole number"),
        (dict(student_steps=(4, 3), train_steps=(1, 1)), "whole number"),
        (dict(student_steps=(4,), train_steps=(1, 1)), "one entry per stage"),
        (dict(student_steps=(), train_steps=()), "empty"),
        (dict(teacher_steps=0, student_steps=(4,), train_steps=(1,)), "distill.teacher_steps must be >= 1, got 0"),
        (dict(w_loss_power=1.0), "w_loss_power"),  # a weighting over w needs a range of w
        (dict(w_range=(0.0, 2.0), w_loss_power=-1.0), "w_loss_power"),
    ],
)
def test_impossible_chains_are_refused_before_any_work(tmp_path, kw, match):
    config = chain_config(**kw)
    with pytest.raises(ValueError, match=match):
        kacjax.run(config, str(tmp_path), ["distill"])
    assert not os.path.exists(tmp_path / "distill")


@pytest.mark.parametrize("key,value", [("inner_method", "rk4"), ("x_source", "noise"), ("loss_space", "latent"),
                                       ("w_draw", "normal")])
def test_unknown_distill_options_are_refused(tmp_path, key, value):
    config = chain_config()
    config.distill[key] = value
    with pytest.raises(ValueError, match=key):
        kacjax.run(config, str(tmp_path), ["distill"])


def test_missing_teacher_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no teacher checkpoint"):
        distill.distill(chain_config(), str(tmp_path))
    assert not os.path.exists(tmp_path / "distill")


@pytest.mark.parametrize("section,key,value,match", [
    ("train", "num_steps", 10, "stopped at step 4 of 10"),  # an unfinished teacher
    # students inherit the teacher's architecture: an override at distill time would write
    # a student whose metadata does not match its weights
    ("model", "hidden", 64, "inherits its teacher's architecture"),
    ("flow", "c", 2.0, "inherits its teacher's architecture"),
    ("flow", "noise_dim", 2, "inherits its teacher's architecture"),
])
def test_chain_refuses_a_teacher_it_cannot_use(tmp_path, teacher_dir, section, key, value, match):
    copy_teacher(teacher_dir, str(tmp_path))
    config = chain_config()
    config[section][key] = value
    with pytest.raises(CheckpointError, match=match):
        distill.distill(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "distill")


@pytest.mark.compat
def test_chain_records_provenance_and_serves_every_stage(tmp_path, teacher_dir):
    copy_teacher(teacher_dir, str(tmp_path))
    dirs = distill.distill(chain_config(), str(tmp_path))
    assert [os.path.basename(d) for d in dirs] == ["stage1_4steps", "stage2_2steps"]
    meta1 = Checkpointer(dirs[0]).read_meta()
    meta2 = Checkpointer(dirs[1]).read_meta()
    assert meta1["student"]["teacher_dir"] == os.path.abspath(os.path.join(tmp_path, "teacher"))
    assert meta1["student"]["teacher_step"] == 4 and meta1["student"]["teacher_role"] == "teacher"
    assert meta1["student"]["inner_steps"] == 2 and meta1["student"]["steps"] == 4
    assert meta2["student"]["teacher_dir"] == os.path.abspath(dirs[0])
    assert meta2["student"]["teacher_role"] == "student" and meta2["student"]["teacher_step"] == 4
    # students inherit the teacher's architecture, in their weights and in their metadata
    teacher_meta = Checkpointer(os.path.join(tmp_path, "teacher")).read_meta()
    assert meta1["config"]["model"] == meta2["config"]["model"] == teacher_meta["config"]["model"]
    assert meta1["data"] == teacher_meta["data"]
    # the student checkpoint holds one network: same parameter count as the teacher
    teacher, student = kacjax.load(str(tmp_path), 0), kacjax.load(str(tmp_path), -1)
    count = lambda p: sum(x.size for x in jax.tree.leaves(p))  # noqa: E731
    assert count(teacher.params) == count(student.params)
    assert student.default_method == "euler" and student.default_steps == 2
    x = student.sample(jax.random.PRNGKey(0), 5, labels=3)
    assert x.shape == (5, 8, 8, 1) and np.all(np.abs(x) <= 1)
    with pytest.raises(ValueError, match="baked in"):
        student.sample(jax.random.PRNGKey(0), 5, w=2.0)
    # finished stages are skipped: a rerun changes nothing
    before = Checkpointer(dirs[1]).latest_step()
    distill.distill(chain_config(), str(tmp_path))
    assert Checkpointer(dirs[1]).latest_step() == before
    # the chain is reused only with its own recipe: any other value is refused, naming it, before any work
    for key, value, saved in (("x_source", "rollout", "'forward'"), ("inner_method", "euler", "'ab2'"),
                              ("loss_space", "velocity", "'state'"), ("w", 0.5, "1.0")):
        with pytest.raises(CheckpointError, match=f"{key}={saved} .the config asks for {value!r}"):
            distill.distill(chain_config(**{key: value}), str(tmp_path))
    assert Checkpointer(dirs[1]).latest_step() == before


def test_a_recipe_round_trips_through_student_metadata_and_older_students_read_as_they_were_made():
    """from_config -> to_meta -> from_meta is the identity for a fixed-w and a conditioned recipe; a
    student written before w_draw and w_loss_power existed reads as drawn uniformly, unweighted; bad
    values are refused in one line."""
    fixed = DistillRecipe.from_config(chain_config().distill)
    cond = DistillRecipe.from_config(chain_config(w_range=(0.0, 2.0), w_draw="ends", w_loss_power=1.5).distill)
    for recipe in (fixed, cond):
        assert DistillRecipe.from_meta(json.loads(json.dumps(recipe.to_meta()))) == recipe
    assert fixed.w_range is None and fixed.w_draw is None and not fixed.conditioned
    assert cond.w_range == (0.0, 2.0) and cond.w_draw == "ends" and cond.conditioned
    assert (fixed.teacher_w(1), fixed.teacher_w(2)) == (fixed.w, 0.0)  # later teachers have w baked in
    old = {k: v for k, v in cond.to_meta().items() if k not in ("w_draw", "w_loss_power")}
    assert DistillRecipe.from_meta(old) == dataclasses.replace(cond, w_draw="uniform", w_loss_power=0.0)
    assert fixed.differences(cond) == {"w_range": (None, [0.0, 2.0]), "w_draw": (None, "ends"),
                                       "w_loss_power": (0.0, 1.5)}
    for overrides, message in ((dict(x_source="prior"), "x_source 'prior' not in"),
                               (dict(w_range=(0.0, 0.5)), r"w_range must be \(\) or \(lo, hi\)"),
                               (dict(w_loss_power=1.0), "w_loss_power must be a number >= 0, and 0 unless"),
                               (dict(w_draw="middle"), "w_draw 'middle' not in")):
        with pytest.raises(ValueError, match=message):
            DistillRecipe.from_config(chain_config(**overrides).distill)


@pytest.mark.parametrize("process, dim, a", [("kac", 4, 4.5), ("line", 64, 9.0), ("brownian", 1, 9.0),
                                             ("linear", 1, 9.0)])
def test_every_noise_family_runs_teacher_to_student_and_is_inherited(tmp_path, process, dim, a):
    """4-D flights over groups of four pixels, line-Kac over the whole 8x8 example, and the Gaussian
    baselines: the teacher trains, the chain distils, both checkpoints record the noise, the loaded
    student's flow draws it, a rerun of the teacher with the default noise is refused as another
    architecture, and a checkpoint written before ``noise_process`` existed reads as ``kac``."""
    config = chain_config(student_steps=(2,), train_steps=(2,), teacher_steps=4)
    config.flow.update(noise_dim=dim, a=a, noise_process=process)
    train(config, str(tmp_path))
    dirs = distill.distill(config, str(tmp_path))
    for directory in (os.path.join(tmp_path, "teacher"), dirs[0]):
        flow = Checkpointer(directory).read_meta()["config"]["flow"]
        assert (flow["noise_dim"], flow["noise_process"]) == (dim, process)
    student = kacjax.load(str(tmp_path), -1)
    assert (student.flow.noise_dim, student.flow.noise_process, student.flow.a) == (dim, process, a)
    x = student.sample(jax.random.PRNGKey(0), 4, labels=1)
    assert x.shape == (4, 8, 8, 1) and np.all(np.isfinite(np.asarray(x)))
    kac_config = chain_config(student_steps=(2,), train_steps=(2,), teacher_steps=4)
    kac_config.flow.a = a
    kac_config.train.num_steps = 6
    with pytest.raises(CheckpointError, match="noise_"):
        train(kac_config, str(tmp_path))
    saved = {"model": dict(config.model), "flow": {k: v for k, v in kac_config.flow.items() if k != "noise_process"}}
    rundir.check_architecture(saved, kac_config, "old", "")  # no key: the Kac noise
    if process != "kac":
        with pytest.raises(CheckpointError, match=f"noise_process.: .{process}"):
            rundir.check_architecture(saved, config, "old", "")


def _stage_run(config, teacher_dir):
    """The first stage's run, set up as the chain sets it up, and its first batch."""
    teacher = Trained.load(os.path.join(teacher_dir, "teacher"))
    stage = distill.plan(config)[0]
    recipe = DistillRecipe.from_config(config.distill)
    run = setup.stage_run(distill.stage_config(config, stage, recipe, teacher), stage, recipe, teacher)
    return run, parallel.shard_batch(run.data.batch(0), run.mesh)


@pytest.mark.parametrize("x_source", X_SOURCES)
def test_no_collective_inside_a_loop_of_the_distill_step(teacher_dir, x_source):
    """Noise for x_t (forward or prior) is drawn per device; the teacher's loops need no collective."""
    run, batch = _stage_run(chain_config(x_source=x_source), teacher_dir)
    assert run.mesh.devices.size == 8
    hlo = run.step.lower(run.state, batch, *run.step_args).compile().as_text()
    assert collectives_in_loops(hlo) == []


@pytest.mark.parametrize("loss_space", LOSS_SPACES)
@pytest.mark.compat
def test_student_equal_to_a_one_euler_step_teacher_has_zero_loss(teacher_dir, loss_space):
    """With N = 1 Euler sub-step, no guidance and the student's parameters equal to the teacher's,
    x_S = x_hat: the loss is 0 in state and in velocity space. A student whose velocity is the
    teacher's plus 0.01 (its output bias shifted) has loss (Delta 0.01)^2, resp. 0.01^2."""
    config = chain_config(student_steps=(4,), train_steps=(1,), teacher_steps=4, inner_method="euler",
                          loss_space=loss_space, w=0.0)
    run, batch = _stage_run(config, teacher_dir)
    assert run.step_args[0] is not run.state.params
    output = max((k for k in run.state.params if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    copy = jax.tree.map(jnp.copy, run.state)  # the step donates the state it is given
    shifted = {**copy.params, output: {**copy.params[output], "bias": copy.params[output]["bias"] + 0.01}}
    shifted_state = copy.replace(params=shifted)
    _, metrics = run.train_step(run.state, batch)
    assert float(metrics["loss"]) == pytest.approx(0.0, abs=1e-12)
    _, metrics = run.train_step(shifted_state, batch)
    delta = 1.0 / 4
    expected = (delta * 0.01) ** 2 if loss_space == "state" else 0.01 ** 2
    assert float(metrics["loss"]) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("ab2", 2)])
def test_teacher_target_matches_a_known_solution_to_the_integrators_order(method, order):
    """dx/dt = cos(t) x has x(t - D) = x(t) exp(sin(t - D) - sin(t)); per-example start times."""
    x_t = jnp.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0]])
    t, delta = jnp.array([1.0, 0.75, 0.5]), 0.5
    exact = x_t * jnp.exp(jnp.sin(t - delta) - jnp.sin(t))[:, None]

    def u(x, tt):
        assert tt.shape == (3,)  # each example on its own grid
        return jnp.cos(tt)[:, None] * x

    errors = [float(jnp.max(jnp.abs(steps.teacher_endpoint(u, x_t, t, delta, method=method, steps=n) - exact)))
              for n in (4, 8, 16)]
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(rates - order) < 0.25), (errors, rates)


def _ema(directory):
    return jax.tree.leaves(parallel.to_host(Generator.load(directory).params))


def test_resume_inside_a_stage_matches_an_uninterrupted_chain(tmp_path, teacher_dir):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    copy_teacher(teacher_dir, a)
    copy_teacher(teacher_dir, b)
    distill.distill(chain_config(train_steps=(4, 4)), a)
    distill.distill(chain_config(train_steps=(4, 2)), b)  # "killed" after 2 steps of stage 2
    distill.distill(chain_config(train_steps=(4, 4)), b)  # resumes stage 2 at step 2
    for stage in ("stage1_4steps", "stage2_2steps"):
        for x, y in zip(_ema(os.path.join(a, "distill", stage)), _ema(os.path.join(b, "distill", stage))):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("x_source,loss_space", [("rollout", "state"), ("forward", "velocity")])
def test_other_distillation_options_run(tmp_path, teacher_dir, x_source, loss_space):
    copy_teacher(teacher_dir, str(tmp_path))
    config = chain_config(student_steps=(4,), train_steps=(2,), x_source=x_source, loss_space=loss_space,
                          inner_method="midpoint")
    (out,) = distill.distill(config, str(tmp_path))
    meta = Checkpointer(out).read_meta()["student"]
    assert (meta["x_source"], meta["loss_space"], meta["inner_method"]) == (x_source, loss_space, "midpoint")


@pytest.mark.slow
def test_distilled_student_beats_teacher_at_equal_steps(tmp_path):
    """On toy2d, a 4-step student lands closer to the teacher's 100-step endpoint than the teacher at 4 steps."""
    c = tiny_config("toy2d", num_steps=1500, batch_size=256, learning_rate=2e-3, log_every=500,
                    checkpoint_every=1500)
    c.model.update(hidden=128, depth=3)
    c.distill.update(teacher_steps=100, student_steps=(4,), train_steps=(600,), learning_rates=(5e-4,),
                     inner_method="ab2", w=0.0)
    c.distill.train.update(batch_size=256, log_every=200, checkpoint_every=600)
    workdir = str(tmp_path)
    train(c, workdir)
    distill.distill(c, workdir)
    teacher, student = kacjax.load(workdir, 0), kacjax.load(workdir, 1)
    key, n = jax.random.PRNGKey(3), 2000
    reference = np.asarray(teacher.solve(key, n, steps=100, sampler="ab2").x)
    rms = lambda x: float(np.sqrt(np.mean((np.asarray(x) - reference) ** 2)))  # noqa: E731
    teacher4 = rms(teacher.solve(key, n, steps=4, sampler="ab2").x)
    teacher4_euler = rms(teacher.solve(key, n, steps=4, sampler="euler").x)
    student4 = rms(student.solve(key, n).x)
    assert student4 < 0.85 * min(teacher4, teacher4_euler), (student4, teacher4, teacher4_euler)


def test_the_python_api_refuses_bad_sampling_values_in_one_line(teacher_dir):
    """``kacjax.load`` and ``Generator.sample`` check what they are given: a non-finite ``w``, ``steps``,
    ``num`` or ``batch_size`` below 1, a stage that is not an int, a dtype that is not a float; a
    finite ``w`` so large that the samples overflow raises instead of returning them."""
    key = jax.random.PRNGKey(0)
    with pytest.raises(TypeError, match="stage must be an int"):
        kacjax.load(teacher_dir, "1")
    with pytest.raises(ValueError, match="dtype must be a float type"):
        kacjax.load(teacher_dir, 0, dtype="int32")
    teacher = kacjax.load(teacher_dir, 0)
    for kwargs, match in ((dict(w=float("nan")), "w must be a finite number"),
                          (dict(w=float("inf")), "w must be a finite number"),
                          (dict(steps=0), "steps must be an integer >= 1, got 0"),
                          (dict(batch_size=0), "batch_size must be an integer >= 1")):
        with pytest.raises(ValueError, match=match):
            teacher.sample(key, 4, **kwargs)
    with pytest.raises(ValueError, match="num must be an integer >= 1, got 0"):
        teacher.sample(key, 0)
    with pytest.raises(FloatingPointError, match="not finite"):
        teacher.sample(key, 4, w=1e38)
    assert np.all(np.isfinite(teacher.sample(key, 4, steps=2)))


def test_a_chain_from_an_older_teacher_step_is_refused_not_reused(tmp_path, teacher_dir):
    """The teacher trained further: its finished students learned from another step, so the chain is
    refused in one line naming both steps, before any work, instead of being reused silently."""
    copy_teacher(teacher_dir, tmp_path)
    config = chain_config(student_steps=(4,), train_steps=(2,))
    distill.distill(config, str(tmp_path))
    config.train.num_steps = 6
    train(config, str(tmp_path))
    with pytest.raises(CheckpointError, match=r"was distilled from step 4 of .*teacher, which now holds step 6"):
        distill.distill(config, str(tmp_path))


def _recorded_step(monkeypatch, config, teacher_dir):
    """One distillation step of ``config``'s first stage with the ``(x_t, t, x_hat)`` the step handed its
    teacher recorded (host arrays); also the run, the batch, the state it started from and the teacher's
    guided velocity ``u(x, t)`` (``w = 1``, the batch's labels)."""
    seen = {}
    original = steps.teacher_endpoint

    def recording(u, x_t, t, delta, *, method, steps):
        x_hat = original(u, x_t, t, delta, method=method, steps=steps)
        jax.debug.callback(lambda *a: seen.update(zip(("x_t", "t", "x_hat"), map(np.asarray, a))), x_t, t, x_hat)
        return x_hat

    monkeypatch.setattr(steps, "teacher_endpoint", recording)
    run, batch = _stage_run(config, teacher_dir)
    # a 4-step teacher barely moves: its weights times 3 make a field whose paths and integrators differ
    teacher_params = jax.tree.map(lambda p: 3.0 * p, run.step_args[0])
    start = jax.tree.map(jnp.copy, run.state)  # the step donates its state
    run.step(run.state, batch, teacher_params)
    jax.effects_barrier()
    teacher = Trained.load(os.path.join(teacher_dir, "teacher"))
    u = velocity_field(teacher.model, teacher_params, batch["label"], Guidance.for_model(teacher.model, 1.0))
    return seen, run, batch, start, u


def test_a_rollout_x_t_is_the_teacher_s_own_state_at_the_drawn_grid_point(monkeypatch, teacher_dir):
    """``x_source='rollout'``: each example's ``x_t`` is the state that the guided teacher, integrated from
    the step's prior draw over the whole student grid, reaches at that example's drawn grid point ``j``
    (``t = T - j Delta``), recomputed here outside the step; one grid point off fails."""
    config = chain_config(student_steps=(4,), train_steps=(1,), teacher_steps=8, x_source="rollout",
                          inner_method="midpoint")
    seen, run, batch, start, u = _recorded_step(monkeypatch, config, teacher_dir)
    M, N, B = 4, 2, batch["x"].shape[0]
    k_index, k_noise, _ = jax.random.split(train_state.step_rng(start), 3)
    j = np.asarray(jax.random.randint(k_index, (B,), 0, M))
    np.testing.assert_allclose(seen["t"], run.flow.T - j * run.flow.T / M, rtol=1e-6)
    prior = run.flow.prior_sample(k_noise, batch["x"].shape, mesh=run.mesh)
    path = np.asarray(samplers.integrate(u, prior, method="midpoint", steps=M * N, t_start=run.flow.T,
                                         return_trajectory=True).trajectory)  # (M N + 1, B, ...)
    rows = np.arange(B)
    np.testing.assert_allclose(seen["x_t"], path[j * N, rows], rtol=1e-4, atol=1e-5)
    assert not np.allclose(seen["x_t"], path[np.minimum(j + 1, M) * N, rows], atol=1e-3)


def test_the_inner_method_is_the_one_the_teacher_integrates_with(monkeypatch, teacher_dir):
    """From the same state and batch (forward ``x_t``), Euler and midpoint give different teacher endpoints,
    each equal to that method's own two steps over ``[t, t - Delta]`` (a stage 8 -> 4)."""
    endpoints = {}
    for method in ("euler", "midpoint"):
        config = chain_config(student_steps=(4,), train_steps=(1,), teacher_steps=8, inner_method=method)
        seen, _, _, _, u = _recorded_step(monkeypatch, config, teacher_dir)
        t = jnp.asarray(seen["t"])
        want = samplers.integrate(u, jnp.asarray(seen["x_t"]), method=method, steps=2, t_start=t, t_end=t - 0.25).x
        np.testing.assert_allclose(seen["x_hat"], np.asarray(want), rtol=1e-4, atol=1e-5)
        endpoints[method] = (seen["x_t"], seen["x_hat"])
    np.testing.assert_array_equal(endpoints["euler"][0], endpoints["midpoint"][0])  # the same x_t
    assert np.max(np.abs(endpoints["euler"][1] - endpoints["midpoint"][1])) > 1e-4
