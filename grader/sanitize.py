"""Make a submitted notebook safe to grade, and say what had to be repaired.

Works cell by cell against the ``Master``: answer cells keep the learner's code; test cells
and other locked cells get the instructor's source back (with the hidden tests); a cell whose
``grade_id`` appears again (a pasted copy) keeps its first occurrence and the copies become
plain cells; graded or locked code cells that were deleted are put back after the cell that
precedes them in the source. A cell is known by its grade_id, or, when its nbgrader metadata
is missing or damaged (not a dict, a grade_id that is not a string), by its source or place
(``cellmatch``); an answer cell known by its place is flagged ``restored-cell``, as it may be
the wrong one. Nothing here raises on a strange submission: every repair is returned as a flag
``(kind, grade_id)`` with kind ``restored-cell``, ``missing-cell`` or ``duplicated-cell``.
"""

import copy

import nbformat

from .cellmatch import BY_PLACE, locate, normal
from .master import grade_id, is_answer


def _plain(cell):
    """The cell without nbgrader metadata: it runs, but counts for nothing."""
    cell.metadata.pop("nbgrader", None)
    return cell


def _readable(cell):
    """The cell as a code or markdown cell with a metadata dict (raw cells become markdown)."""
    if cell.cell_type not in ("code", "markdown"):
        cell = nbformat.v4.new_markdown_cell(cell.source)
    if not isinstance(cell.get("metadata"), dict):
        cell.metadata = nbformat.NotebookNode()
    return cell


def _set_type(cell, cell_type):
    if cell.cell_type == cell_type:
        return cell
    fresh = (nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell)(
        cell.source, metadata=cell.metadata
    )
    return fresh


def sanitize(submitted, master):
    """``(notebook, flags)``: a copy of ``submitted`` ready to run, and the repairs made."""
    graded = master.graded_nb()
    released = {grade_id(c): c for c in master.released_nb().cells if grade_id(c)}
    wanted = {grade_id(c): c for c in graded.cells if grade_id(c)}
    flags = []
    seen = set()
    cells = []
    given = [_readable(cell) for cell in copy.deepcopy(submitted.cells)]
    for cell, (gid, how) in zip(given, locate(given, master), strict=True):
        if gid is None:
            cells.append(_plain(cell))
            continue
        if gid in seen:
            flags.append(("duplicated-cell", gid))
            cells.append(_plain(cell))
            continue
        seen.add(gid)
        master_cell = wanted[gid]
        cell = _set_type(cell, master_cell.cell_type)
        cell.metadata["nbgrader"] = copy.deepcopy(master_cell.metadata.nbgrader)
        if how == BY_PLACE:
            flags.append(("restored-cell", gid))  # an answer found by its place: maybe wrong
        if not master_cell.metadata.nbgrader.get("solution"):
            # Learners cannot change these cells: tests, locked setup and prose.
            if normal(cell.source) != normal(released[gid].source):
                flags.append(("restored-cell", gid))
            cell.source = master_cell.source
        cells.append(cell)

    # Put deleted cells back after the cell that comes before them in the source.
    order = [grade_id(c) for c in graded.cells]
    for i, master_cell in enumerate(graded.cells):
        gid = order[i]
        if not gid or gid in seen:
            continue
        meta = master_cell.metadata.nbgrader
        if master_cell.cell_type != "code" and not meta.get("grade"):
            continue  # deleted locked prose: nothing to grade or run
        flags.append(("missing-cell", gid))
        restored = copy.deepcopy(master_cell)
        if is_answer(restored):
            restored.source = released[gid].source
        before = [g for g in order[:i] if g in seen]
        index = 0
        if before:
            index = 1 + max(j for j, c in enumerate(cells) if grade_id(c) == before[-1])
        cells.insert(index, restored)
        seen.add(gid)

    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(graded.metadata))
    for cell in cells:
        cell.pop("id", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.cells = cells
    nb.nbformat_minor = 4
    return nb, flags
