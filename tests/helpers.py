"""Small configs shared by the pipeline tests."""

import os
import re

import jax
import numpy as np

from kacjax.configs.defaults import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_TINY = 40  # examples in the tiny TFDS dataset
TINY_SIZE = 32


# The float64 context manager: jax.enable_x64 from jax 0.8, jax.experimental.enable_x64 before.
if hasattr(jax, "enable_x64"):
    enable_x64 = jax.enable_x64
else:
    from jax.experimental import enable_x64  # noqa: F401


def prepare_tiny_images(data_dir, pixel_seed: int = 0) -> str:
    """Prepares ``kacjax_tiny_images`` (array_record, no TensorFlow) in ``data_dir``; returns it.

    CIFAR-10-like 32x32x3 images. Channel 0 is the example id everywhere (so the id
    survives flips), channel 1 rises left to right (so flips show), label = id % 10, channel 2
    noise drawn with ``pixel_seed`` (another seed: another preparation of the same dataset).
    """
    import numpy as np
    import PIL.Image
    import tensorflow_datasets as tfds

    class KacjaxTinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(TINY_SIZE, TINY_SIZE, 3)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            shape = (N_TINY, TINY_SIZE, TINY_SIZE)
            noise = np.random.default_rng(pixel_seed).integers(0, 256, shape, dtype=np.uint8)
            ramp = np.broadcast_to(np.arange(TINY_SIZE, dtype=np.uint8) * 8, (TINY_SIZE, TINY_SIZE))
            for i in range(N_TINY):
                image = np.stack([np.full((TINY_SIZE, TINY_SIZE), i, np.uint8), ramp, noise[i]], axis=-1)
                # A PIL image is encoded by PIL; a numpy image would need TensorFlow.
                yield i, {"image": PIL.Image.fromarray(image), "label": i % 10}

    KacjaxTinyImages(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return data_dir


def user_env(**extra) -> dict:
    """The environment of a user's shell: one CPU device and XLA's own thread pools, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC")}
    return dict(env, **extra)


def free_port() -> int:
    """A free TCP port on the loopback interface (for a local JAX coordinator)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ball_points(dim: int, c: float, a: float, last=(1.0, 1.0)):
    """Test points of the ball ``|x| <= c t`` at extreme and ordinary times, float32 ``(times, 64, dim)``.

    Returns ``(times (8,), x, frac (64,))``: per time, 58 random radii in ``[0, 1) c t`` (signed radii of
    a random direction, also ``(-1, 0)`` when ``last`` holds a negative entry), then the centre, ``1 - 1e-7``,
    ``1 - 1e-6``, ``1 - 1e-3`` and ``last`` (fractions of ``c t``: 1 on the sphere); ``times`` span 0, 1e-30
    and ``a t = 400``.
    """
    rng = np.random.default_rng(1)
    times = np.array([0.0, 1e-30, 1e-12, 1e-6, 0.01, 0.5, 1.0, 400.0 / a], np.float32)
    low = -1.0 if min(last) < 0 else 0.0
    rows = []
    for t in times:
        direction = rng.standard_normal((64, dim))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        frac = np.concatenate([rng.uniform(low, 1, 58), [0.0, 1 - 1e-7, 1 - 1e-6, 1 - 1e-3, *last]])
        rows.append(direction * (c * t * frac)[:, None])
    return times, np.stack(rows).astype(np.float32), frac


def tiny_config(data: str = "toy2d", **train):
    """A fast config: an MLP on toy2d (unconditional) or digits (conditional)."""
    c = load_config(os.path.join(ROOT, "experiments", "toy2d.py:quick"))
    if data == "digits":
        c.data = dict(name="digits")
        c.model = dict(name="mlp", hidden=32, depth=2, time_scale=1.0, num_classes=10)
        c.train.label_dropout = 0.1
    else:
        c.model.update(hidden=32, depth=2)
    c.train.update(dict(batch_size=16, num_steps=4, log_every=2, checkpoint_every=2, warmup_steps=0))
    c.train.update(train)
    return c



def chain_config(student_steps=(4, 2), train_steps=(4, 4), teacher_steps=8, **distill_kw):
    """A fast digits chain on :func:`tiny_config`'s conditional MLP: 8 -> 4 -> 2 steps, guided with w = 1."""
    c = tiny_config("digits", num_steps=4)
    c.distill.update({"teacher_steps": teacher_steps, "student_steps": student_steps, "train_steps": train_steps,
                      "learning_rates": (1e-3,) * len(student_steps), "w": 1.0, **distill_kw})
    c.distill.train.update(batch_size=16, log_every=2, checkpoint_every=2)
    return c


def copy_teacher(src, dst) -> None:
    """Copies the teacher of workdir ``src`` into workdir ``dst``."""
    import shutil

    shutil.copytree(os.path.join(src, "teacher"), os.path.join(dst, "teacher"))


_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def collectives_in_loops(hlo_text: str) -> list:
    """Names of collective instructions that run inside a while loop of compiled HLO text.

    Follows every computation a loop's body or condition calls. A collective in a loop
    syncs the devices on every iteration.
    """
    bodies, current = {}, None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head:
            current = head.group(1)
            bodies[current] = []
        elif current is not None:
            bodies[current].append(line)
    calls = re.compile(r"(?:body|condition|to_apply|calls|branch_computations)=\{?%?([\w.\-, %]+)\}?")
    pending = [name for lines in bodies.values() for line in lines if " while(" in line
               for name in re.findall(r"(?:body|condition)=%?([\w.\-]+)", line)]
    seen, found = set(), []
    while pending:
        name = pending.pop()
        if name in seen or name not in bodies:
            continue
        seen.add(name)
        for line in bodies[name]:
            op = re.search(r"= \S+ ([\w\-]+)\(", line)
            if op and op.group(1).removesuffix("-start") in _COLLECTIVES:
                found.append(line.split("=")[0].strip())
            for group in calls.findall(line):
                pending.extend(n.strip().lstrip("%") for n in group.split(","))
    return found
