"""Fast tests of the digits report's pure parts (kacjax.evaluation.reports.digits) on fake generations:
the stability along the path (Theorem 8) and the speedup, whose numbers the README's tables and figures
come from."""

import numpy as np
import pytest

from kacjax.evaluation.reports import digits
from kacjax.evaluation.sampling import Generated


def _generated(trajectory, times):
    trajectory = np.asarray(trajectory, np.float32)
    return Generated(x=trajectory[-1], trajectory=trajectory, times=np.asarray(times, np.float32), nfe=len(times) - 1,
                     network_passes=len(times) - 1)


def test_stability_is_the_rms_distance_at_every_point_of_the_student_grid():
    """A fine path of 8 steps and a student of 4: the student's k-th state is compared with the fine path's
    2k-th, whatever the other fine states hold; a student grid that is not every stride-th point is refused."""
    times_fine = np.linspace(1.0, 0.0, 9)
    fine = np.zeros((9, 3, 2))
    fine[1::2] = 100.0  # off the student's grid: must not count
    student = np.zeros((5, 3, 2))
    student[:, 0, 0] = np.arange(5)  # one coordinate of 6 moves by k at point k
    got = digits.stability(_generated(student, times_fine[::2]), _generated(fine, times_fine), stride=2)
    np.testing.assert_allclose(got["times"], times_fine[::2], rtol=1e-6)
    np.testing.assert_allclose(got["rms_student_vs_teacher"], np.arange(5) / np.sqrt(6), rtol=1e-6)
    with pytest.raises(ValueError, match="not every 2-th point"):
        digits.stability(_generated(student[:4], times_fine[:8:2]), _generated(fine, times_fine), stride=2)
    with pytest.raises(ValueError, match="not every 4-th point"):
        digits.stability(_generated(student, times_fine[::2]), _generated(fine, times_fine), stride=4)


def test_speedup_compares_the_fewest_step_student_with_the_reference_teacher():
    rows = [{"model": "teacher", "steps": 100, "network_passes": 200, "images_per_s": 50.0},
            {"model": "teacher", "steps": 1, "network_passes": 2, "images_per_s": 4000.0},
            {"model": "student (stage 2)", "steps": 4, "network_passes": 4, "images_per_s": 3000.0},
            {"model": "student (stage 4)", "steps": 1, "network_passes": 1, "images_per_s": 9000.0}]
    got = digits.speedup(rows)
    assert got == {"student_steps": 1, "teacher_steps": 100, "student_passes": 1, "teacher_passes": 200,
                   "student_images_per_s": 9000.0, "teacher_images_per_s": 50.0, "speedup": 180.0}
    assert digits.speedup(rows[:2]) is None


def test_a_row_names_its_subject_once_and_reports_written_before_read_the_same():
    """Each subject has one label and one slug; a row records it and is read back to it, and a row written
    before ``stage`` and ``sweep`` were recorded is read from its label."""
    from kacjax.evaluation.reports.subject import Subject

    expected = {Subject(): ("teacher", "teacher"), Subject(sweep=True): ("teacher (sweep)", "teacher_sweep"),
                Subject(3): ("student (stage 3)", "stage3"), Subject(12): ("student (stage 12)", "stage12")}
    for subject, (label, slug) in expected.items():
        assert (subject.label, subject.slug) == (label, slug)
        assert Subject.of_row({**subject.fields(), "steps": 4}) == subject
        assert Subject.of_row({"model": label, "steps": 4}) == subject  # an older report
        assert subject.is_student == (subject.stage > 0)


def test_the_plan_is_the_fine_reference_then_teacher_and_student_per_step_count_then_the_sweep():
    """The rows the README's tables come from: the teacher's fine reference with the chain's inner sampler
    and w, then at each step count the teacher with its own sampler and the student of that grid (on its own
    grid, no solve arguments, its path kept for the stability figure) when the chain has one, then the sweep."""
    from types import SimpleNamespace as NS

    teacher = NS(default_method="ab2", sampling=NS(steps=100, w=1.0), provenance=None, is_student=False)
    students = tuple(NS(default_method="euler", default_steps=k, sampling=NS(w=1.0), provenance={"stage": i + 1},
                        is_student=True) for i, k in enumerate((20, 4, 1)))
    settings = NS(teacher_steps=100, steps=(1, 2, 4), guidance_sweep=(0.0, 2.0), sweep_samplers=("euler",))
    main, sweep = digits.plan_rows(digits.Models(teacher, students, 1.0, "midpoint"), settings)
    assert [(p.subject.label, p.sampler, p.steps, p.trajectory) for p in main] == [
        ("teacher", "midpoint", 100, True), ("teacher", "ab2", 1, False), ("student (stage 3)", "euler", 1, True),
        ("teacher", "ab2", 2, False), ("teacher", "ab2", 4, False), ("student (stage 2)", "euler", 4, True)]
    assert main[0].solve == dict(steps=100, sampler="midpoint", w=1.0) and main[2].solve == {}
    assert main[2].gen is students[2] and main[1].gen is teacher
    assert [(p.subject.label, p.sampler, p.steps, p.w, p.solve) for p in sweep] == [
        ("teacher (sweep)", "euler", 100, w, dict(steps=100, sampler="euler", w=w)) for w in (0.0, 2.0)]
