"""Which cell of the master each cell of a submitted notebook is.

A cell is known by its nbgrader ``grade_id``. A notebook saved by a tool that drops cell
metadata, or with metadata damaged by hand, has none; two more clues are used then, both cheap
and safe:

- by source: a cell whose source is exactly that of one locked cell of the released notebook (a
  test cell as the learner was given it) is that cell;
- by place: an answer cell lies between the same two located cells as in the master (in this
  course just above its first test cell). Of the unclaimed cells of its type there, the last
  one that defines every name the released stub defines (``def sigmoid``) is the answer (the
  one in force when the notebook runs); when no cell there does, the only cell of its type is.

A cell found by place is an answer put back together by guesswork: ``sanitize`` flags it, so a
human looks at the grade. The same clues tell which notebook of the course a submission is
(``owners``), and whether it holds any answer (``answered``), for ``collect``.
"""

import ast

from .master import grade_id, nbgrader_meta

BY_METADATA, BY_SOURCE, BY_PLACE = "metadata", "source", "place"


def normal(text):
    """``text`` without surrounding blank lines and trailing spaces: what an editor may change."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _source(cell):
    """The cell's source; empty when it has none, or one that is not text."""
    source = cell.get("source")
    return source if isinstance(source, str) else ""


def defined_names(source):
    """Names of the functions and classes that ``source`` defines at top level (none when it
    does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, TypeError):
        return set()
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, kinds)}


def _is_solution(cell):
    return bool(nbgrader_meta(cell).get("solution"))


def _locked_sources(master):
    """``{normal source: grade_id}`` of the released notebook's graded or locked cells that are
    not answers, for sources that occur once."""
    seen = {}
    for cell in master.released["cells"]:
        gid, text = grade_id(cell), normal(_source(cell))
        if gid and text and not _is_solution(cell):
            seen.setdefault(text, []).append(gid)
    return {text: gids[0] for text, gids in seen.items() if len(gids) == 1}


def _by_source(cells, master, located):
    """Locate unclaimed cells whose source is that of one locked cell, unless two cells claim
    the same one."""
    claimed = {gid for gid, _ in located if gid}
    sources = _locked_sources(master)
    found = {}
    for i, cell in enumerate(cells):
        gid = sources.get(normal(_source(cell))) if located[i][0] is None else None
        if gid and gid not in claimed:
            found.setdefault(gid, []).append(i)
    for gid, indices in found.items():
        if len(indices) == 1:
            located[indices[0]] = (gid, BY_SOURCE)


def _by_place(cells, master, located):
    """Locate the master's unclaimed answer cells between their located neighbours."""
    order = [grade_id(c) for c in master.graded["cells"]]
    stubs = {grade_id(c): c for c in master.released["cells"] if grade_id(c)}
    where = {}
    for i, (gid, _) in enumerate(located):
        if gid:
            where.setdefault(gid, i)
    for k, gid in enumerate(order):
        stub = stubs.get(gid)
        if stub is None or gid in where or not _is_solution(stub):
            continue
        before = [where[g] for g in order[:k] if g in where]
        after = [where[g] for g in order[k + 1 :] if g in where]
        low = before[-1] if before else -1
        high = after[0] if after else len(cells)
        gap = [
            i
            for i in range(low + 1, high)
            if located[i][0] is None and cells[i].get("cell_type") == stub["cell_type"]
        ]
        names = defined_names(_source(stub))
        named = [i for i in gap if names and names <= defined_names(_source(cells[i]))]
        pick = named[-1] if named else (gap[0] if len(gap) == 1 else None)
        if pick is not None:
            located[pick] = (gid, BY_PLACE)
            where[gid] = pick


def locate(cells, master):
    """``[(grade_id, how)]``, one per cell of ``cells``: the master cell it is, and the clue it
    was known by (``BY_METADATA``, ``BY_SOURCE`` or ``BY_PLACE``); ``(None, None)`` for a cell
    of the learner's own. Copies of a cell with the same grade_id are all located by it."""
    wanted = {grade_id(c) for c in master.graded["cells"]} - {None}
    located = []
    for cell in cells:
        gid = grade_id(cell)
        located.append((gid, BY_METADATA) if gid in wanted else (None, None))
    _by_source(cells, master, located)
    _by_place(cells, master, located)
    return located


def recognised(cells, master):
    """How many of ``master``'s cells are in ``cells``, by grade_id or by source."""
    located = locate(cells, master)
    return len({gid for gid, how in located if how in (BY_METADATA, BY_SOURCE)})


def answered(cells, master):
    """Whether ``cells`` hold an answer to ``master``: one of its answer cells, located, whose
    source is not the stub learners were given (leaving aside blank lines and trailing
    spaces)."""
    stubs = master.stubs
    return any(
        gid in stubs and normal(_source(cell)) != normal(stubs[gid])
        for cell, (gid, _) in zip(cells, locate(cells, master), strict=True)
    )


def owners(cells, masters):
    """The masters with the most cells recognised in ``cells`` (none when no cell is)."""
    counts = [(recognised(cells, m), m) for m in masters]
    best = max((n for n, _ in counts), default=0)
    return [m for n, m in counts if n == best and best > 0]
