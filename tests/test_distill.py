"""Endpoint-only distillation: the chain plan, provenance, resume, and what it buys."""

import os

import jax
import numpy as np
import pytest

from helpers import collectives_in_loops, tiny_config
from kacjax import api, distill, experiment, parallel, train, train_state
from kacjax.data import build_input
from kacjax.checkpoint import CheckpointError, Checkpointer


def chain_config(student_steps=(4, 2), train_steps=(4, 4), teacher_steps=8, **distill_kw):
    c = tiny_config("digits", num_steps=4)
    c.distill.update(teacher_steps=teacher_steps, student_steps=student_steps, train_steps=train_steps,
                     learning_rates=(1e-3,) * len(student_steps), w=1.0, **distill_kw)
    c.distill.train.update(batch_size=16, log_every=2, checkpoint_every=2)
    return c


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("teacher"))
    train.train_teacher(chain_config(), workdir)
    return workdir


def _copy_teacher(src, dst):
    import shutil

    shutil.copytree(os.path.join(src, "teacher"), os.path.join(dst, "teacher"))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(student_steps=(3,), train_steps=(1,)), "whole number"),
        (dict(student_steps=(4, 3), train_steps=(1, 1)), "whole number"),
        (dict(student_steps=(4,), train_steps=(1, 1)), "one entry per stage"),
        (dict(student_steps=(), train_steps=()), "empty"),
    ],
)
def test_impossible_chains_are_refused_before_any_work(tmp_path, kw, match):
    config = chain_config(**kw)
    with pytest.raises(ValueError, match=match):
        distill.run_chain(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "distill")


@pytest.mark.parametrize("key,value", [("inner_method", "rk4"), ("x_source", "noise"), ("loss_space", "latent")])
def test_unknown_distill_options_are_refused(tmp_path, key, value):
    config = chain_config()
    config.distill[key] = value
    with pytest.raises(ValueError, match=key):
        distill.run_chain(config, str(tmp_path))


def test_missing_teacher_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no teacher checkpoint"):
        distill.run_chain(chain_config(), str(tmp_path))
    assert not os.path.exists(tmp_path / "distill")


def test_unfinished_teacher_is_refused(tmp_path, teacher_dir):
    _copy_teacher(teacher_dir, str(tmp_path))
    config = chain_config()
    config.train.num_steps = 10
    with pytest.raises(CheckpointError, match="stopped at step 4 of 10"):
        distill.run_chain(config, str(tmp_path))


def test_chain_records_provenance_and_serves_every_stage(tmp_path, teacher_dir):
    _copy_teacher(teacher_dir, str(tmp_path))
    dirs = distill.run_chain(chain_config(), str(tmp_path))
    assert [os.path.basename(d) for d in dirs] == ["stage1_4steps", "stage2_2steps"]
    meta1 = Checkpointer(dirs[0]).read_meta()
    meta2 = Checkpointer(dirs[1]).read_meta()
    assert meta1["student"]["teacher_dir"] == os.path.abspath(os.path.join(tmp_path, "teacher"))
    assert meta1["student"]["teacher_step"] == 4 and meta1["student"]["teacher_role"] == "teacher"
    assert meta1["student"]["inner_steps"] == 2 and meta1["student"]["steps"] == 4
    assert meta2["student"]["teacher_dir"] == os.path.abspath(dirs[0])
    assert meta2["student"]["teacher_role"] == "student" and meta2["student"]["teacher_step"] == 4
    # the student checkpoint holds one network: same parameter count as the teacher
    teacher, student = api.load(str(tmp_path), 0), api.load(str(tmp_path), -1)
    count = lambda p: sum(x.size for x in jax.tree.leaves(p))  # noqa: E731
    assert count(teacher.params) == count(student.params)
    assert student.default_method == "euler" and student.default_steps == 2
    x = student.sample(jax.random.PRNGKey(0), 5, labels=3)
    assert x.shape == (5, 8, 8, 1) and np.all(np.abs(x) <= 1)
    with pytest.raises(ValueError, match="baked in"):
        student.sample(jax.random.PRNGKey(0), 5, w=2.0)
    # finished stages are skipped: a rerun changes nothing
    before = Checkpointer(dirs[1]).latest_step()
    distill.run_chain(chain_config(), str(tmp_path))
    assert Checkpointer(dirs[1]).latest_step() == before


@pytest.mark.parametrize("x_source", distill.X_SOURCES)
def test_no_collective_inside_a_loop_of_the_distill_step(x_source):
    """Noise for x_t (forward or prior) is drawn per device; the teacher's loops need no collective."""
    config = chain_config(x_source=x_source)
    mesh = parallel.make_mesh()
    data = build_input(config.data, global_batch_size=16, seed=0)
    model = experiment.build_model_checked(config, data.num_classes)
    tx = train_state.make_optimizer(config.train)
    state = experiment.create_state(model, tx, data.shape, True, 0, mesh)
    st = distill.plan(config)[0]
    step = experiment.jit_step(distill.make_distill_step(
        model, experiment.build_flow(config), tx, st=st, dcfg=config.distill, ema_decay=0.9, null_label=10,
        guide_teacher=True, mesh=mesh), mesh)
    hlo = step.lower(state, parallel.shard_batch(data.batch(0), mesh), state.params).compile().as_text()
    assert collectives_in_loops(hlo) == []


def _ema(directory):
    return jax.tree.leaves(parallel.to_host(api.Generator(directory).params))


def test_resume_inside_a_stage_matches_an_uninterrupted_chain(tmp_path, teacher_dir):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _copy_teacher(teacher_dir, a)
    _copy_teacher(teacher_dir, b)
    distill.run_chain(chain_config(train_steps=(4, 4)), a)
    distill.run_chain(chain_config(train_steps=(4, 2)), b)  # "killed" after 2 steps of stage 2
    distill.run_chain(chain_config(train_steps=(4, 4)), b)  # resumes stage 2 at step 2
    for stage in ("stage1_4steps", "stage2_2steps"):
        for x, y in zip(_ema(os.path.join(a, "distill", stage)), _ema(os.path.join(b, "distill", stage))):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("x_source,loss_space", [("rollout", "state"), ("forward", "velocity")])
def test_other_distillation_options_run(tmp_path, teacher_dir, x_source, loss_space):
    _copy_teacher(teacher_dir, str(tmp_path))
    config = chain_config(student_steps=(4,), train_steps=(2,), x_source=x_source, loss_space=loss_space,
                          inner_method="midpoint")
    (out,) = distill.run_chain(config, str(tmp_path))
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
    train.train_teacher(c, workdir)
    distill.run_chain(c, workdir)
    teacher, student = api.load(workdir, 0), api.load(workdir, 1)
    key, n = jax.random.PRNGKey(3), 2000
    reference = np.asarray(teacher.solve(key, n, steps=100, sampler="ab2").x)
    rms = lambda x: float(np.sqrt(np.mean((np.asarray(x) - reference) ** 2)))  # noqa: E731
    teacher4 = rms(teacher.solve(key, n, steps=4, sampler="ab2").x)
    teacher4_euler = rms(teacher.solve(key, n, steps=4, sampler="euler").x)
    student4 = rms(student.solve(key, n).x)
    assert student4 < 0.85 * min(teacher4, teacher4_euler), (student4, teacher4, teacher4_euler)
