"""Which network a report row scores, as a value: one label for tables and one slug for file names."""

from __future__ import annotations

import dataclasses
import re

_STUDENT_LABEL = re.compile(r"^student \(stage (\d+)\)$")


@dataclasses.dataclass(frozen=True)
class Subject:
    """The teacher (``stage`` 0) or the student of stage ``stage``; ``sweep`` marks the teacher's
    guidance-sweep rows. Rows record it as ``model`` (the label), ``stage`` and ``sweep``."""

    stage: int = 0
    sweep: bool = False

    @classmethod
    def of(cls, gen, *, sweep: bool = False) -> "Subject":
        """The subject of a loaded :class:`~kacjax.evaluation.generator.Generator`."""
        return cls(gen.provenance["stage"] if gen.is_student else 0, sweep)

    @classmethod
    def of_row(cls, row: dict) -> "Subject":
        """The subject of a saved row: its ``stage`` and ``sweep``, or the label of a row written before
        they were recorded."""
        if "stage" in row:
            return cls(int(row["stage"]), bool(row.get("sweep", False)))
        student = _STUDENT_LABEL.match(row["model"])
        return cls(int(student.group(1)), False) if student else cls(0, row["model"] == "teacher (sweep)")

    @property
    def is_student(self) -> bool:
        return self.stage > 0

    @property
    def label(self) -> str:
        """``teacher``, ``teacher (sweep)`` or ``student (stage k)``."""
        if self.is_student:
            return f"student (stage {self.stage})"
        return "teacher (sweep)" if self.sweep else "teacher"

    @property
    def slug(self) -> str:
        """``teacher``, ``teacher_sweep`` or ``stage<k>``: for file names."""
        if self.is_student:
            return f"stage{self.stage}"
        return "teacher_sweep" if self.sweep else "teacher"

    def fields(self) -> dict:
        """The row's keys that name the subject."""
        return {"model": self.label, "stage": self.stage, "sweep": self.sweep}
