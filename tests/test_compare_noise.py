"""The ``compare_noise`` mode (kacjax.cli.compare_noise) and its report
(kacjax.evaluation.reports.noise_comparison): planning, variance matching, gathering, refusals."""

import json
import math
import os

import numpy as np
import pytest

import kacjax
from helpers import tiny_config
from kacjax.core.flow import KacFlow
from kacjax.evaluation.reports import noise_comparison


def test_every_family_is_matched_to_the_flow_s_noise_variance_at_T():
    """The matched ``c`` gives each family the base flow's per-coordinate variance at ``t = T`` (checked by
    the family's own variance formula), keeping ``a`` and ``T``; the names map to the right noise."""
    base = KacFlow(a=9.0, c=3.0, T=1.0)
    want = 1.0 - (1.0 - math.exp(-18.0)) / 18.0  # (c^2/a)[T - (1 - e^{-2aT})/(2a)] at a = 9, c = 3, T = 1
    expected_c = {"kac": 3.0, "line64": 24.0, "brownian": math.sqrt(9.0 * want), "linear": math.sqrt(9.0 * want)}
    for family in ("kac", "flight2", "flight4", "line4", "line64", "brownian", "linear"):
        flow = noise_comparison.matched_flow(base, family)
        assert (flow.a, flow.T) == (9.0, 1.0)
        np.testing.assert_allclose(float(flow.variance(flow.horizon)), want, rtol=1e-5)
        if family in expected_c:
            np.testing.assert_allclose(flow.c, expected_c[family], rtol=1e-5)
    assert noise_comparison.family_noise("flight4") == ("kac", 4)
    assert noise_comparison.family_noise("line64") == ("line", 64)
    assert noise_comparison.family_noise("linear") == ("linear", 1)


def _comparison_config(**compare):
    c = tiny_config(num_steps=6)
    c.pipeline = ("compare_noise",)
    c.compare_noise.update({"families": ("kac", "brownian"), "seeds": (0, 1), "modes": ("train", "evaluate"),
                            **compare})
    c.evaluate.update(num_samples=64, steps=4, few_steps=(1, 2), num_trajectories=2, methods=("euler",))
    return c


@pytest.mark.parametrize("compare, match", [
    (dict(families=("kac", "heat")), "unknown family 'heat'"),
    (dict(families=("kac", "kac")), "distinct"),
    (dict(families=("line3",)), "use noise_dim in"),  # toy2d points have 2 coordinates
    (dict(families=("flight4",)), "use noise_dim in"),
    (dict(seeds=()), "seeds"),
    (dict(seeds=(0, 0)), "seeds"),
    (dict(modes=("evaluate",)), "must hold train and evaluate"),
    (dict(modes=("train", "evaluate", "sample")), "within"),
])
def test_impossible_comparisons_are_refused_before_any_work(tmp_path, compare, match):
    with pytest.raises(ValueError, match=match):
        kacjax.run(_comparison_config(**compare), str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_the_comparison_trains_every_family_and_seed_and_gathers_them(tmp_path):
    """Each (family, seed) is its own run with its own seed and noise; the report's means and spreads
    are those of the runs' own reports; a rerun reuses every run."""
    config = _comparison_config()
    report = kacjax.run(config, str(tmp_path)) or json.load(open(tmp_path / "noise_report.json"))
    for family, process in (("kac", "kac"), ("brownian", "brownian")):
        entry = report["families"][family]
        assert entry["noise_process"] == process
        values = []
        for seed in (0, 1):
            run = noise_comparison.run_dir(str(tmp_path), family, seed)
            meta = kacjax.load(run, 0).meta["config"]
            assert (meta["seed"], meta["flow"]["noise_process"]) == (seed, process)
            own = json.load(open(os.path.join(run, "toy2d_metrics.json")))
            values.append(own["few_steps"]["1"]["energy_distance"])
        np.testing.assert_allclose(entry["mean"]["euler_energy_distance_1"], np.mean(values), rtol=1e-12)
        np.testing.assert_allclose(entry["std"]["euler_energy_distance_1"], np.std(values, ddof=1), rtol=1e-12)
    runs = sorted(os.listdir(tmp_path / "compare_noise"))
    assert runs == sorted(f"{f}_seed{k}" for f in ("kac", "brownian") for k in (0, 1))
    assert {"noise_report.md", "noise_report.csv", "noise_report.png"} <= set(os.listdir(tmp_path))
    logs = {r: (tmp_path / "compare_noise" / r / "teacher" / "metrics.jsonl").read_text() for r in runs}
    kacjax.run(config, str(tmp_path))  # the teachers are finished: nothing is trained again
    assert logs == {r: (tmp_path / "compare_noise" / r / "teacher" / "metrics.jsonl").read_text() for r in runs}


def test_digits_metrics_read_every_row_stage_and_path(tmp_path):
    """A digits run's numbers come from its report and the teacher's metrics: teacher and student rows by
    steps, the largest RMS along each student's path, the teacher's largest speed at ``t <= 0.1 T``."""
    rows = [{"model": "teacher", "steps": 100, "fd_digits": 1.0, "accuracy": 0.9},
            {"model": "teacher", "steps": 1, "fd_digits": 30.0, "accuracy": 0.2},
            {"model": "student (stage 2)", "steps": 1, "fd_digits": 2.0, "accuracy": 0.8}]
    report = {"rows": rows, "stability": {"1": {"times": [1.0, 0.0], "rms_student_vs_teacher": [0.0, 0.25]}},
              "velocity": {"teacher": {"t": [1.0, 0.5, 0.1, 0.05, 0.0], "max": [9.0, 8.0, 3.0, 4.0, 2.0]},
                           "noise": {"kac_max": [2.9, 2.5]}}}
    (tmp_path / "nfe_report.json").write_text(json.dumps(report))
    os.makedirs(tmp_path / "teacher")
    (tmp_path / "teacher" / "metrics.jsonl").write_text(
        '{"step": 100, "loss": 0.5}\n{"step": 150, "eval": 1}\n{"step": 200, "loss": 0.25}\n')
    got = noise_comparison.digits_metrics(str(tmp_path))
    assert got == {"teacher_fd_100": 1.0, "teacher_accuracy_100": 0.9, "teacher_fd_1": 30.0,
                   "teacher_accuracy_1": 0.2, "student_fd_1": 2.0, "student_accuracy_1": 0.8,
                   "stability_max_1": 0.25, "teacher_speed_near_data": 4.0, "noise_speed_at_smallest_clock": 2.9,
                   "teacher_loss": 0.25}
