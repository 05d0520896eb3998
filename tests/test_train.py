"""Teacher training: data parallelism, resume, checkpoints, EMA, guards, bad input."""

import itertools
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import collectives_in_loops, tiny_config
from kacjax.core import guidance
from kacjax.runtime import parallel
from kacjax.runtime.logs import MetricWriter
from kacjax.training import rundir, setup, steps, train_state
from kacjax.training.checkpoint import CheckpointError, Checkpointer, abstract_like
from kacjax.training.loop import NonFiniteError, TrainingInterrupted, fit
from kacjax.training.teacher import train


def _parts(config, devices):
    run = setup.teacher_run(config, devices=devices)
    return run.mesh, run.data, run.state, run.step


def _params(state):
    return jax.tree.leaves(parallel.to_host(state.params))


@pytest.mark.compat
def test_eight_devices_match_one_device():
    assert jax.device_count() == 8, "conftest should provide 8 fake CPU devices"
    config = tiny_config("digits")
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh, data, state, step = _parts(config, devices)
        for s in range(2):
            state, metrics = step(state, parallel.shard_batch(data.batch(s), mesh))
        results.append((_params(state), float(metrics["loss"])))
    (p1, loss1), (p8, loss8) = results
    assert loss1 == pytest.approx(loss8, rel=1e-5)
    for a, b in zip(p1, p8):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_no_collective_inside_a_loop_of_the_step():
    """The Kac sampler's data-dependent loops run per device: no all-reduce in a loop condition.

    Such a collective would sync the devices on every iteration; the step built without
    the mesh has them, which shows the check can fail.
    """
    config = tiny_config("digits")
    mesh, data, state, step = _parts(config, None)
    batch = parallel.shard_batch(data.batch(0), mesh)
    assert collectives_in_loops(step.lower(state, batch).compile().as_text()) == []
    run = setup.teacher_run(config)
    global_step = setup.jit_step(steps.make_train_step(
        run.model, run.flow, run.tx, label_dropout=0.1, ema_decay=0.9), mesh)
    assert collectives_in_loops(global_step.lower(state, batch).compile().as_text())


def test_cpu_thread_pools_get_two_threads_per_fake_device():
    flags = {"XLA_FLAGS": "--xla_foo=1 --xla_force_host_platform_device_count=8"}
    env = dict(flags)
    assert parallel.size_cpu_thread_pools(env) == 16 and env["PJRT_NPROC"] == "16"
    for kept in ({"PJRT_NPROC": "3"}, {"NPROC": "5"}):  # the user's own choice stands
        env = dict(flags, **kept)
        assert parallel.size_cpu_thread_pools(env) is None and env == dict(flags, **kept)
    for env in ({}, {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}):
        assert parallel.size_cpu_thread_pools(env) is None and "PJRT_NPROC" not in env


@pytest.mark.compat
def test_kill_and_resume_continues_exactly(tmp_path):
    full = tiny_config(num_steps=6)
    train(full, str(tmp_path / "a"))
    first = tiny_config(num_steps=4)
    train(first, str(tmp_path / "b"))
    assert Checkpointer(str(tmp_path / "b" / "teacher")).latest_step() == 4
    resumed = train(full, str(tmp_path / "b"))
    assert int(resumed.step) == 6
    a = Checkpointer(str(tmp_path / "a" / "teacher"))
    b = Checkpointer(str(tmp_path / "b" / "teacher"))
    mesh = parallel.make_mesh()
    _, data, state, _ = _parts(full, mesh.devices.tolist())
    abstract = abstract_like(jax.eval_shape(lambda s: s, state), parallel.replicated(mesh))
    for x, y in zip(_params(a.restore(abstract)), _params(b.restore(abstract))):
        np.testing.assert_array_equal(x, y)


def test_checkpoint_from_eight_devices_restores_on_one(tmp_path):
    config = tiny_config(num_steps=2)
    state8 = train(config, str(tmp_path), devices=jax.devices())
    config.train.num_steps = 2  # already done: resume only restores
    state1 = train(config, str(tmp_path), devices=jax.devices()[:1])
    leaf = jax.tree.leaves(state1.params)[0]
    assert len(leaf.sharding.device_set) == 1
    for a, b in zip(_params(state8), _params(state1)):
        np.testing.assert_array_equal(a, b)


def test_ema_update_and_step_counter():
    params = {"w": jnp.array([1.0, 2.0])}
    tx = optax.sgd(1.0)
    state = train_state.create(params, tx, jax.random.PRNGKey(0))
    grads = {"w": jnp.array([0.5, -1.0])}
    new, metrics = train_state.apply_gradients(state, jnp.float32(1.0), grads, tx, ema_decay=0.75)
    np.testing.assert_allclose(new.params["w"], [0.5, 3.0])
    np.testing.assert_allclose(new.ema_params["w"], 0.75 * np.array([1.0, 2.0]) + 0.25 * np.array([0.5, 3.0]))
    assert int(new.step) == 1 and int(metrics["skipped"]) == 0
    np.testing.assert_allclose(metrics["grad_norm"], np.sqrt(0.25 + 1.0), rtol=1e-6)


def test_nonfinite_step_is_skipped():
    params = {"w": jnp.array([1.0, 2.0])}
    tx = optax.adam(0.1)
    state = train_state.create(params, tx, jax.random.PRNGKey(0))
    new, metrics = train_state.apply_gradients(state, jnp.float32(jnp.nan), {"w": jnp.array([jnp.nan, 1.0])}, tx, 0.9)
    np.testing.assert_array_equal(new.params["w"], params["w"])
    np.testing.assert_array_equal(new.ema_params["w"], params["w"])
    assert int(new.nonfinite_streak) == 1 and int(new.nonfinite_total) == 1 and int(new.step) == 1
    good, _ = train_state.apply_gradients(new, jnp.float32(1.0), {"w": jnp.array([1.0, 1.0])}, tx, 0.9)
    assert int(good.nonfinite_streak) == 0 and int(good.nonfinite_total) == 1


@pytest.mark.parametrize("tx", [optax.adam(0.1, b1=1.0), optax.sgd(jnp.inf)], ids=["adam_b1_1", "sgd_inf"])
def test_an_update_that_makes_a_parameter_nonfinite_is_skipped(tx):
    """Finite loss and gradients whose update is not finite (Adam with b1 = 1 divides by 1 - b1^t = 0; an
    infinite learning rate): nothing changes and the step counts as skipped."""
    params = {"w": jnp.array([1.0, 2.0])}
    state = train_state.create(params, tx, jax.random.PRNGKey(0))
    new, metrics = train_state.apply_gradients(state, jnp.float32(1.0), {"w": jnp.array([0.5, 1.0])}, tx, 0.9)
    for tree in (new.params, new.ema_params, new.opt_state):
        for leaf in jax.tree.leaves(tree):
            assert np.all(np.isfinite(np.asarray(leaf, np.float64)))
    np.testing.assert_array_equal(new.params["w"], params["w"])
    assert int(metrics["skipped"]) == 1 and int(new.nonfinite_streak) == 1 and int(new.nonfinite_total) == 1


def _fit_with(config, tmp_path, batch_at):
    mesh, data, state, step = _parts(config, jax.devices())
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    writer = MetricWriter(str(tmp_path))
    batches_from = lambda start: map(batch_at(data), itertools.count(start))  # noqa: E731
    return fit(state, step, batches_from, mesh=mesh, num_steps=config.train.num_steps,
               batch_size=config.train.batch_size, checkpointer=ckpt, meta={"test": True}, writer=writer,
               log_every=1, checkpoint_every=100, max_nonfinite_streak=2), ckpt


def test_repeated_nonfinite_losses_stop_training(tmp_path):
    config = tiny_config(num_steps=10)

    def poisoned(data):
        return lambda s: {**data.batch(s), "x": np.full_like(data.batch(s)["x"], np.nan)}

    with pytest.raises(NonFiniteError, match="consecutive steps"):
        _fit_with(config, tmp_path, poisoned)


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path):
    config = tiny_config(num_steps=50)

    def killer(data):
        def batch_at(s):
            if s == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return data.batch(s)
        return batch_at

    with pytest.raises(TrainingInterrupted):
        _fit_with(config, tmp_path, killer)
    assert Checkpointer(str(tmp_path / "ckpt")).latest_step() == 4
    lines = open(tmp_path / "metrics.jsonl").read().splitlines()
    assert len(lines) == 4 and '"loss"' in lines[0]


def test_label_dropout_rate():
    labels = jnp.arange(20000) % 10
    dropped = guidance.drop_labels(jax.random.PRNGKey(1), labels, 0.1, 10)
    frac = float(jnp.mean(dropped == 10))
    assert abs(frac - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 20000)
    kept = dropped != 10
    np.testing.assert_array_equal(dropped[kept], labels[kept])
    np.testing.assert_array_equal(guidance.drop_labels(jax.random.PRNGKey(1), labels, 0.0, 10), labels)


def test_guidance_combines_both_branches_in_one_call():
    calls = []

    def apply_velocity(x, t, y):
        calls.append(x.shape[0])
        return x * (1.0 + y[:, None].astype(x.dtype)) + t[:, None]

    x = jnp.ones((3, 2))
    t = jnp.full((3,), 0.5)
    y = jnp.array([0, 1, 2])
    w = 1.5
    out = guidance.guided(apply_velocity, x, t, y, w, null_label=5)
    cond = x * (1.0 + y[:, None]) + 0.5
    uncond = x * 6.0 + 0.5
    np.testing.assert_allclose(out, (1 + w) * cond - w * uncond, rtol=1e-6)
    np.testing.assert_allclose(out, uncond + (1 + w) * (cond - uncond), rtol=1e-6)  # the s = 1 + w reading
    assert calls == [6]
    calls.clear()
    np.testing.assert_allclose(guidance.guided(apply_velocity, x, t, y, 0, 5), cond)  # w = 0: the conditional
    assert calls == [6]


def test_the_guidance_value_decides_the_passes_once():
    """Guidance.for_model makes the kind from the model and the weight: a conditional network at a weight
    known to be 0, or an unconditional one, runs once; any other weight, a traced one included, runs both
    branches; a guidance-conditioned network takes w as an input. The velocity field follows the kind
    alone, and the weights of one kind share one compiled program."""
    import dataclasses

    calls = []

    @dataclasses.dataclass(frozen=True)
    class Network:  # a velocity network as velocity_field calls it, counting its rows
        num_classes: object = 5
        w_embedding: bool = False

        def apply(self, variables, x, t, y, w=None, train=False):
            calls.append(x.shape[0])
            return x * (1.0 + y[:, None].astype(x.dtype)) + t[:, None] + (0.0 if w is None else w[:, None])

    conditional, unconditional, takes_w = Network(), Network(num_classes=None), Network(w_embedding=True)
    G = guidance.Guidance
    assert G.for_model(conditional, 0.0) == G("none", 0.0) == G.for_model(unconditional, 2.0)
    assert G.for_model(conditional, 2.0) == G("classifier_free", 2.0)
    assert G.for_model(conditional, jnp.float32(0.0)).kind == "classifier_free"  # not known to be 0
    assert G.for_model(takes_w, 0.0).kind == "input"
    assert [G.for_model(m, 2.0).network_passes for m in (conditional, unconditional, takes_w)] == [2, 1, 1]
    with pytest.raises(ValueError, match="guidance kind 'cfg' not in"):
        G("cfg", 1.0)
    x, t, y = jnp.ones((3, 2)), jnp.full((3,), 0.5), jnp.array([0, 1, 2])
    field = jax.jit(lambda g, x: guidance.velocity_field(conditional, None, y, g)(x, t))
    cond = field(G("none", jnp.float32(0.0)), x)
    both = field(G("classifier_free", jnp.float32(0.0)), x)
    guided = field(G("classifier_free", jnp.float32(2.0)), x)
    assert calls == [3, 6]  # traced once per kind: the second classifier-free weight reuses the program
    np.testing.assert_allclose(both, cond, rtol=1e-6)
    np.testing.assert_allclose(guided, 3.0 * cond - 2.0 * (x * 6.0 + 0.5), rtol=1e-6)
    calls.clear()
    np.testing.assert_allclose(guidance.velocity_field(takes_w, None, y, G("input", 2.0))(x, t), cond + 2.0)
    assert calls == [3]


@pytest.mark.parametrize(
    "section,key,value,match",
    [
        ("train", "batch_size", 0, "batch_size"),
        ("train", "ema_decay", 1.0, "ema_decay"),
        ("train", "learning_rate", -1.0, "learning_rate"),
        ("flow", "a", -2.0, "a must be"),
        ("flow", "g_schedule", "cubic", "g_schedule"),
        ("train", "warmup_steps", -1, "warmup_steps"),
        ("data", "target", "spiral", "toy2d target"),
        ("flow", "noise_dim", 3, "no closed form"),
        ("flow", "noise_dim", 4, r"examples of shape \(2,\) have 2; use noise_dim in \[1, 2\]"),
        ("train", "b1", 1.0, r"train.b1 must be in \[0, 1\)"),
        ("train", "b2", 1.0, r"train.b2 must be in \[0, 1\)"),
        ("model", "dropout", 5.0, r"model.dropout must be in \[0, 1\)"),
        ("flow", "noise_process", "heat", "noise_process must be one of"),
        ("flow", "noise_process", "line", "line-Kac group's dim must be an int >= 2"),
    ],
)
def test_impossible_config_values_are_refused(tmp_path, section, key, value, match):
    import kacjax

    config = tiny_config()
    config[section][key] = value
    with pytest.raises(ValueError, match=match):
        kacjax.run(config, str(tmp_path), ["train"])
    assert not os.path.exists(tmp_path / "teacher")


def test_a_train_run_checks_its_config_once(tmp_path, monkeypatch):
    """``kacjax.run`` checks every mode before the first starts; the mode and the setup path do not
    check again."""
    import kacjax
    from kacjax.cli import modes

    from kacjax.training import checks

    check, calls = checks.check_train_config, []

    def counting(config, mesh=None):
        calls.append(mesh)
        check(config, mesh)

    monkeypatch.setattr(checks, "check_train_config", counting)
    monkeypatch.setitem(modes.MODES, "train", modes.Mode(modes.MODES["train"].run, counting))
    kacjax.run(tiny_config(num_steps=2), str(tmp_path), ["train"])
    assert len(calls) == 1 and calls[0] is not None  # with the mesh: the batch over the devices too


def test_batch_not_divisible_by_devices(tmp_path):
    with pytest.raises(ValueError, match="divisible by the number of devices"):
        train(tiny_config(batch_size=12), str(tmp_path))


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    train(tiny_config(num_steps=2), str(tmp_path))
    other = tiny_config(num_steps=4)
    other.model.hidden = 64
    with pytest.raises(CheckpointError, match="model"):
        train(other, str(tmp_path))


def test_checkpoints_written_before_noise_dim_existed_keep_their_architecture():
    """A saved flow section without ``noise_dim`` is the 1-D Kac flow: it matches noise_dim=1 only."""
    saved = tiny_config().to_dict()
    del saved["flow"]["noise_dim"]
    rundir.check_architecture(saved, tiny_config(), "W", "remedy")
    flights = tiny_config()
    flights.flow.noise_dim = 2
    with pytest.raises(CheckpointError, match="noise_dim"):
        rundir.check_architecture(saved, flights, "W", "remedy")


def test_conditional_model_needs_labelled_data(tmp_path):
    config = tiny_config()
    config.model.num_classes = 10  # toy2d is unconditional
    with pytest.raises(ValueError, match="num_classes"):
        train(config, str(tmp_path))


def _cut_array_files(step_dir):
    """Cuts the largest array data file of each of the step's data folders in half."""
    for folder in {p.parent for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"}:
        largest = max((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
        with open(largest, "r+b") as f:
            f.truncate(largest.stat().st_size // 2)


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_damaged_latest_checkpoint_falls_back_loudly_and_training_repairs_it(tmp_path, capsys):
    """Array files of step 4 cut in half: loading names the damaged step and its read error (no
    blame on the architecture, no "Event loop is closed" reports of the step's other reads) and
    uses step 2; resuming training deletes step 4, trains it again and ends where an intact run ends."""
    import kacjax

    config = tiny_config(num_steps=4)
    train(config, str(tmp_path / "intact"))
    train(config, str(tmp_path / "cut"))
    _cut_array_files(tmp_path / "cut" / "teacher" / "4")
    capsys.readouterr()
    gen = kacjax.load(str(tmp_path / "cut"))
    assert gen.step == 2
    err = capsys.readouterr().err
    assert "checkpoint step 4" in err and "another architecture" not in err
    state = train(config, str(tmp_path / "cut"))
    assert "deleting it" in capsys.readouterr().err
    intact = Checkpointer(str(tmp_path / "intact" / "teacher"))
    abstract = abstract_like(jax.eval_shape(lambda s: s, state), parallel.replicated(parallel.make_mesh()))
    for a, b in zip(_params(state), _params(intact.restore(abstract))):
        np.testing.assert_array_equal(a, b)
    assert kacjax.load(str(tmp_path / "cut")).step == 4


def _damage_meta(step_dir, how):
    import shutil

    if how == "bad_json":
        (step_dir / "meta" / "metadata").write_text('{"role": "teacher", "config": {')
    elif how == "empty_file":
        (step_dir / "meta" / "metadata").write_text("")
    elif how == "no_meta":
        shutil.rmtree(step_dir / "meta")
    else:  # an empty step directory
        shutil.rmtree(step_dir)
        step_dir.mkdir()


@pytest.mark.parametrize("how", ["bad_json", "empty_file", "no_meta", "empty_step"])
def test_a_newest_step_with_damaged_metadata_is_skipped_and_training_repairs_it(tmp_path, capsys, how):
    """Whatever part of step 4 is damaged, loading names the step it uses (2) and training resumes from 2."""
    import kacjax

    config = tiny_config(num_steps=4)
    train(config, str(tmp_path))
    _damage_meta(tmp_path / "teacher" / "4", how)
    capsys.readouterr()
    assert kacjax.load(str(tmp_path)).step == 2
    assert "step 2, the newest intact one" in capsys.readouterr().err
    train(config, str(tmp_path))
    assert kacjax.load(str(tmp_path)).step == 4
    assert Checkpointer(str(tmp_path / "teacher")).read_meta()["role"] == "teacher"


def test_bfloat16_computes_in_bf16_with_float32_state_and_samples_in_float32(tmp_path):
    """model.dtype=bfloat16: finite losses close to float32's, parameters, EMA and Adam moments in
    float32; the checkpoint samples in float32 unless asked."""
    import kacjax
    from helpers import ROOT
    from kacjax.configs.defaults import load_config

    losses = {}
    for dtype in ("float32", "bfloat16"):
        config = load_config(os.path.join(ROOT, "experiments", "digits.py"))
        config.model.update(ch=16, dtype=dtype)
        config.train.update(batch_size=16, num_steps=2, log_every=1, checkpoint_every=2, warmup_steps=0)
        state = train(config, str(tmp_path / dtype), devices=jax.devices()[:1])
        leaves = jax.tree.leaves((state.params, state.ema_params, state.opt_state))
        assert {x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)} == {jnp.dtype("float32")}
        lines = (tmp_path / dtype / "teacher" / "metrics.jsonl").read_text().splitlines()
        losses[dtype] = [__import__("json").loads(line)["loss"] for line in lines]
    assert all(np.isfinite(losses["bfloat16"]))
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)
    assert losses["bfloat16"] != losses["float32"]  # it did compute in bfloat16
    assert kacjax.load(str(tmp_path / "bfloat16")).model.dtype == jnp.float32
    assert kacjax.load(str(tmp_path / "bfloat16"), dtype="bfloat16").model.dtype == jnp.bfloat16


def test_a_metrics_line_cut_short_is_dropped_on_resume(tmp_path):
    """A kill or a full disk in the middle of an append leaves half a JSON line; the resumed run drops it
    and logs on, every line whole."""
    train(tiny_config(num_steps=4), str(tmp_path))
    path = tmp_path / "teacher" / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 6, "loss": 0.')
    train(tiny_config(num_steps=6), str(tmp_path))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
