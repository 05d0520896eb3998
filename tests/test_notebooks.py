"""The notebooks run end to end with small settings.

Each notebook is executed by nbclient from the repository root, with a cell of small values
inserted right after its ``parameters`` cell (the papermill convention). The kernel inherits
this session's environment: 8 fake CPU devices (tests/conftest.py).
"""

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from kacjax.training.rundir import latest_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELL_TIMEOUT = 600  # seconds

# experiments/digits.py:quick sizes (a 20-step teacher, two stages 8 -> 4 -> 1 of 10 steps each: a third and a
# half of its steps, which are in no program). Its steps and samplers are those tests/test_cli.py's kill-and-resume
# run compiles (on 8 devices, with this notebook's EMA decay): in a whole session the fixture loads them from the
# XLA cache (compiling was most of its time).
QUICK_DIGITS = dict(TEACHER_STEPS=20, WARMUP_STEPS=10, LOG_EVERY=10, DISTILL_TEACHER_STEPS=8, STUDENT_STEPS=(4, 1),
                    DISTILL_TRAIN_STEPS=(10, 10), DISTILL_BATCH_SIZE=32, SAMPLE_NUM=20, SAMPLE_STEPS=8,
                    EVAL_NUM_SAMPLES=100, EVAL_STEPS=(1, 4), EVAL_TEACHER_STEPS=8)


def execute(name: str, **overrides):
    """Runs ``notebooks/<name>`` with ``overrides`` assigned after its parameters cell; returns the notebook."""
    nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{key} = {value!r}" for key, value in overrides.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    return nb


def outputs(*cells) -> list:
    return [out for cell in cells if cell.cell_type == "code" for out in cell.outputs]


def png_count(*cells) -> int:
    return sum(out.output_type == "display_data" and "image/png" in out.data for out in outputs(*cells))


def printed(nb) -> str:
    return "".join(out.text for out in outputs(*nb.cells) if out.output_type == "stream")


def assert_no_errors(nb) -> None:
    assert not [out for out in outputs(*nb.cells) if out.output_type == "error"]


def test_notebooks_are_committed_without_outputs():
    for name in sorted(os.listdir(os.path.join(ROOT, "notebooks"))):
        nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name
        assert sum("parameters" in cell.metadata.get("tags", []) for cell in code) == 1, name


def test_kac_process_notebook_draws_its_figures():
    nb = execute("01_kac_process.ipynb", NUM_DRAWS=20_000, NUM_SIMULATED=20_000)
    assert_no_errors(nb)
    # paths, law, velocity, variance, forward process; planar flights: paths, law, velocity
    assert png_count(*nb.cells) == 8
    assert "largest relative difference" in printed(nb) and "largest radial CDF gap" in printed(nb)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Notebook 02 executed with quick settings, and the workdir it filled."""
    workdir = tmp_path_factory.mktemp("digits")
    return execute("02_train_and_distill_digits.ipynb", WORKDIR=str(workdir), **QUICK_DIGITS), workdir


@pytest.mark.slow
def test_train_and_distill_notebook_fills_its_workdir(digits_run):
    nb, workdir = digits_run
    assert_no_errors(nb)
    assert latest_step(str(workdir / "teacher")) == 20
    assert latest_step(str(workdir / "distill" / "stage1_4steps")) == 10
    assert latest_step(str(workdir / "distill" / "stage2_1steps")) == 10
    assert list((workdir / "samples").glob("*.png"))
    assert (workdir / "nfe_report.md").is_file() and (workdir / "nfe_report.png").is_file()
    assert png_count(next(cell for cell in nb.cells if "read_metrics" in cell.source)) == 1  # the loss curves, inline
    assert png_count(*nb.cells) >= 3  # and the sample grid and report figure


@pytest.mark.slow
def test_sample_notebook_shows_every_stage_of_that_run(digits_run):
    _, workdir = digits_run
    nb = execute("03_sample_any_stage.ipynb", WORKDIR=str(workdir), STEPS=8, NUM=10, SAMPLERS=("ab2",),
                 WEIGHTS=(1.0, 3.0))
    assert_no_errors(nb)
    assert png_count(*nb.cells) == 4  # one stage, samplers, guidance weights, a row per stage
    text = printed(nb)
    assert f"2: {workdir / 'distill' / 'stage2_1steps'}," in text  # the teacher and both students were loaded
    assert "ValueError: " in text  # a student refuses a guidance weight
    assert "no chain 'wcond'" in text  # and the notebook says how to distil a guidance-conditioned one


def test_sample_notebook_says_how_to_make_a_run(tmp_path):
    with pytest.raises(CellExecutionError, match="02_train_and_distill_digits.ipynb"):
        execute("03_sample_any_stage.ipynb", WORKDIR=str(tmp_path))
