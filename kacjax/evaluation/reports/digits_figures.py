"""The figures of the digits report (:mod:`kacjax.evaluation.reports.digits`) and of the guidance
report (:mod:`kacjax.evaluation.reports.guidance`), from their rows."""

from __future__ import annotations

from kacjax.evaluation.artifacts import save, subplots
from kacjax.evaluation.reports.subject import Subject


def quality(path: str, rows, sweep) -> None:
    """FD-digits and class accuracy against sampling steps, teacher and students (and the sweep of w)."""
    fig, axes = subplots(3 if sweep else 2, (13 if sweep else 9, 3.6))
    for name, style in (("teacher", "o-"), ("student", "s-")):
        pts = sorted(((r["steps"], r) for r in rows if Subject.of_row(r).is_student == (name == "student")),
                     key=lambda p: p[0])
        if name == "teacher":
            pts = pts[:-1] if len(pts) > 1 else pts  # the fine reference is drawn as a line
        xs = [p[0] for p in pts]
        axes[0].plot(xs, [p[1]["fd_digits"] for p in pts], style, label=name)
        axes[1].plot(xs, [p[1]["accuracy"] for p in pts], style, label=name)
    ref = rows[0]
    panels = ((axes[0], "fd_digits", "FD-digits (lower is better)"), (axes[1], "accuracy", "class accuracy"))
    for ax, key, title in panels:
        ax.axhline(ref[key], color="k", ls="--", lw=0.8, label=f"teacher, {ref['steps']} steps")
        ax.set(xscale="log", xlabel="sampling steps (NFE)", title=title)
        ax.legend(fontsize=7)
    if sweep:
        for method in sorted({r["sampler"] for r in sweep}):
            pts = sorted((r["w"], r["fd_digits"]) for r in sweep if r["sampler"] == method)
            axes[2].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
        axes[2].set(xlabel="guidance weight w", title=f"FD-digits of the teacher, {sweep[0]['steps']} steps")
        axes[2].legend(fontsize=7)
    save(fig, path)


def stability(path: str, stability_rows: dict) -> None:
    """RMS distance between each student's path and the fine teacher path, at each of its grid points."""
    fig, ax = subplots(1, (5.2, 3.6))
    for k, s in sorted(stability_rows.items()):
        ax.plot(s["times"], s["rms_student_vs_teacher"], "o-", label=f"{k}-step student")
    ax.set(xlabel="t (sampling runs from T to 0)", ylabel="RMS(student - teacher)",
           title="stability along the path")
    ax.invert_xaxis()
    if stability_rows:
        ax.legend(fontsize=7)
    save(fig, path)


def velocity(path: str, profile: dict) -> None:
    """Left: the noise velocity against the Brownian limit as the noise clock goes to 0.
    Right: the trained teacher's guided velocity along its sampling path, with its bound (if any)."""
    fig, (left, right) = subplots(2, (10.5, 3.8))
    noise = profile["noise"]
    left.loglog(noise["clock"], noise["brownian_rms"], "--", color="C3", label="Brownian limit, RMS σ/(2√s)")
    name = noise.get("noise", "Kac")
    left.loglog(noise["clock"], noise["kac_rms"], "o-", ms=3, color="C0", label=f"{name}, RMS |v(s, K(s))|")
    left.loglog(noise["clock"], noise["kac_max"], "-", lw=0.8, color="C0", alpha=0.6, label=f"{name}, largest |v|")
    if noise["c"] is not None:
        left.axhline(noise["c"], color="k", lw=0.8, ls=":", label=f"speed bound c = {noise['c']:g}")
    left.set(xlabel="noise clock s = g(t) (data end at 0)", ylabel="|velocity|",
             title="noise velocity near the data end")
    left.legend(fontsize=7)
    teacher = profile["teacher"]
    right.plot(teacher["t"], teacher["rms"], "o-", ms=2, label="RMS |u_θ|")
    right.plot(teacher["t"], teacher["max"], "-", label="largest |u_θ|")
    if teacher["bound"] is not None:
        right.axhline(teacher["bound"], color="k", lw=0.8, ls=":",
                      label=f"bound of the guided target ({teacher['bound']:g})")
    right.set(xlabel="t (sampling runs from T to 0)", ylabel="|velocity|", title="trained teacher along its path")
    right.invert_xaxis()
    right.legend(fontsize=7)
    save(fig, path)


def guidance(path: str, rows) -> None:
    """FD-digits and accuracy against ``w``: teacher, the guidance-conditioned student, the fixed-``w`` ones."""
    fig, axes = subplots(2, (9, 3.6))
    for name, style in (("teacher", "o--"), ("conditioned student", "s-"), ("fixed-w student", "^-")):
        pts = sorted((r["w"], r) for r in rows if r["model"] == name)
        label = f"{name} ({pts[0][1]['steps']} steps)" if pts else name
        for ax, key in zip(axes, ("fd_digits", "accuracy")):
            ax.plot([p[0] for p in pts], [p[1][key] for p in pts], style, label=label)
    axes[0].set(xlabel="guidance weight w", title="FD-digits (lower is better)")
    axes[1].set(xlabel="guidance weight w", title="class accuracy")
    axes[0].legend(fontsize=7)
    save(fig, path)
