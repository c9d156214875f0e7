"""Generate the student notebooks in ``notebooks/`` from the sources in ``solutions/``.

nbgrader's ``generate_assignment`` replaces solutions with ``raise NotImplementedError()`` and
strips hidden tests; we then clear outputs and write the JSON in one canonical form, so the same
sources always give byte-identical student notebooks.
"""

import filecmp
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from . import nbgrader_parts, progress
from .course import RELEASE, SOURCE, assignments, command, known, load_config
from .gradebook import stamp_without_alembic


def canonical(path):
    """Rewrite the notebook at ``path`` with outputs cleared and JSON in canonical form."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.pop("id", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nb.nbformat_minor = 4
    with open(path, "w", encoding="utf-8") as f:
        f.write(nbformat.writes(nb) + "\n")


def nbgrader_api(release_dir, workspace_dir):
    """nbgrader's API on a course whose releases go to ``release_dir`` and whose gradebook is
    made in ``workspace_dir``."""
    nbgrader_parts.load()
    from nbgrader.apps import NbGraderAPI

    # its new gradebook, in workspace_dir, is stamped as the workspace's is
    stamp_without_alembic()
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    Path(workspace_dir).mkdir(parents=True, exist_ok=True)  # nbgrader changes into it
    config = load_config(
        **{
            "CourseDirectory.root": str(workspace_dir),
            "CourseDirectory.release_directory": str(release_dir),
            "CourseDirectory.db_url": f"sqlite:///{Path(workspace_dir) / 'gradebook.db'}",
        }
    )
    return NbGraderAPI(config=config)


def generate(ids, release_dir, workspace_dir):
    """Run nbgrader's generate_assignment for ``ids`` into ``release_dir``; canonicalise. A
    progress bar counts the assignments, shown from the start (nbgrader takes a while to load)."""
    with progress.bar(len(ids), "release", "assignment") as bar:
        api = nbgrader_api(release_dir, workspace_dir)
        for aid in ids:
            bar.set_postfix_str(aid)
            result = api.generate_assignment(aid, force=True, create=True)
            if not result["success"]:
                raise RuntimeError(
                    f"generate_assignment {aid} failed:\n{result.get('log', '')}\n{result['error']}"
                )
            for nb in sorted((Path(release_dir) / aid).glob("*.ipynb")):
                canonical(nb)
            bar.update()


def release(ids=None, check=False, out=print):
    """Regenerate ``notebooks/`` (or, with ``check``, compare a fresh build with it).

    Returns the list of notebooks that differ (always empty without ``check``).
    """
    ids = known(ids or assignments())
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        target = Path(tmp) / "release" if check else RELEASE
        generate(ids, target, Path(tmp) / "workspace")
        if not check:
            out(f"released {len(ids)} assignment(s) into {RELEASE.relative_to(SOURCE.parent)}/")
            return []
        drifted = []
        for aid in ids:
            for fresh in sorted((target / aid).glob("*.ipynb")):
                committed = RELEASE / aid / fresh.name
                if not committed.exists() or not filecmp.cmp(fresh, committed, shallow=False):
                    drifted.append(f"notebooks/{aid}/{fresh.name}")
        for name in drifted:
            out(f"drifted: {name} (run `{command()} release`)")
        if not drifted:
            out(f"notebooks/ matches solutions/ ({len(ids)} assignment(s))")
        return drifted
