"""nbgrader configuration for the course, shared by the `grader` command line and the formgrader.

JupyterLab finds this file because `make lab` puts this folder on JUPYTER_CONFIG_PATH. All
grading state lives in the workspace: BACKPROP_GRADING_DIR, or `.grading/` in the repository
(git-ignored). The repository's `solutions/` is the source and `notebooks/` the release folder.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by the config loader)

repo = Path(__file__).resolve().parent.parent
workspace = Path(os.environ.get("BACKPROP_GRADING_DIR") or repo / ".grading").resolve()
(workspace / "exchange").mkdir(parents=True, exist_ok=True)  # the formgrader expects it

c.CourseDirectory.course_id = "backprop-from-scratch"
c.CourseDirectory.root = str(workspace)
c.CourseDirectory.source_directory = str(repo / "solutions")
c.CourseDirectory.release_directory = str(repo / "notebooks")
c.CourseDirectory.db_url = f"sqlite:///{workspace / 'gradebook.db'}"
c.Exchange.root = str(workspace / "exchange")

# Per-cell time limit (seconds); the grader adds a whole-notebook limit of its own.
c.ExecutePreprocessor.timeout = 30
# A deleted test cell is put back from the source instead of silently scoring nothing.
c.OverwriteCells.add_missing_cells = True
c.Autograde.create_student = True
# Feedback never shows hidden tests: not in the cells, not in any output.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "grader.scrub.ScrubHiddenOutputs",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
