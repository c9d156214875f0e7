"""``report``: what the class got right and wrong, per exercise.

For each exercise: how many submissions passed it and how many made each diagnosed mistake
(the ``[mistake: <key>]`` tags of ``backprop.gradcheck``, or why a test failed without one). Printed
as a table, and written as an HTML page with a bar chart plus the same data as JSON.
"""

import html
import json
from collections import Counter

from . import course
from .classresults import (
    GRADED,
    exercises,
    grade_status,
    graded_assignments,
    not_graded_yet,
    nothing_graded,
    results,
    while_in_use,
)
from .table import format_table

COLOURS = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
PASSED = "#2ca02c"


def class_report(statuses):
    """``[{assignment, exercise, submissions, passed, mistakes: {key: count}}]`` in course order,
    from the results of the notebooks graded as handed in now (``statuses``: ``{assignment:
    grade_status(assignment)}``)."""
    rows = []
    for aid in graded_assignments():
        status = statuses[aid]
        stored = [r for sid, r in results(aid).items() if status.get(sid, GRADED) == GRADED]
        for name in exercises(aid):
            mine = [ex for r in stored for ex in r["exercises"] if ex["name"] == name]
            mistakes = Counter(key for ex in mine for key in ex["mistakes"])
            rows.append(
                {
                    "assignment": aid,
                    "exercise": name,
                    "submissions": len(mine),
                    "passed": sum(1 for ex in mine if ex["passed"]),
                    "mistakes": dict(sorted(mistakes.items(), key=lambda kv: (-kv[1], kv[0]))),
                }
            )
    return rows


def text_table(rows):
    table = [("assignment", "exercise", "passed", "mistakes (students)")]
    for r in rows:
        mistakes = ", ".join(f"{k} {n}" for k, n in r["mistakes"].items()) or "-"
        table.append(
            (r["assignment"], r["exercise"], f"{r['passed']}/{r['submissions']}", mistakes)
        )
    return format_table(table)


def _chart(rows, keys):
    """An SVG of one stacked bar per exercise: passed, then each mistake."""
    bar, gap, left, width = 18, 8, 260, 420
    most = max([r["submissions"] for r in rows] + [1])
    scale = width / most
    parts = []
    for i, r in enumerate(rows):
        y = 30 + i * (bar + gap)
        label = html.escape(f"{r['assignment']} · {r['exercise']}")
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{label}</text>')
        x = left
        segments = [("passed", r["passed"], PASSED)] + [
            (k, r["mistakes"].get(k, 0), COLOURS[j % len(COLOURS)]) for j, k in enumerate(keys)
        ]
        for name, count, colour in segments:
            if count:
                w = count * scale
                tip = html.escape(f"{name}: {count}")
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}">'
                    f"<title>{tip}</title></rect>"
                )
                x += w
    legend = [("passed", PASSED)] + [(k, COLOURS[j % len(COLOURS)]) for j, k in enumerate(keys)]
    for j, (name, colour) in enumerate(legend):
        x = 10 + j * 150
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="15">{html.escape(name)}</text>')
    height = 40 + len(rows) * (bar + gap)
    total = max(left + width + 20, 10 + len(legend) * 150)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" '
        f'font-family="sans-serif" font-size="12">{"".join(parts)}</svg>'
    )


def html_page(rows):
    keys = sorted({k for r in rows for k in r["mistakes"]})
    body = ["<tr><th>assignment</th><th>exercise</th><th>passed</th><th>mistakes</th></tr>"]
    for r in rows:
        mistakes = ", ".join(f"{html.escape(k)}: {n}" for k, n in r["mistakes"].items()) or "–"
        body.append(
            f"<tr><td>{html.escape(r['assignment'])}</td><td>{html.escape(r['exercise'])}</td>"
            f"<td>{r['passed']} / {r['submissions']}</td><td>{mistakes}</td></tr>"
        )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Class report</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        "<h1>What the class got right and wrong</h1>"
        f"{_chart(rows, keys)}<h2>Per exercise</h2><table>{''.join(body)}</table></body></html>\n"
    )


def report(to=None, out=print):
    """Print the table; write the HTML page ``to`` (default ``exports/report.html``), and its
    rows as JSON beside it (``report.json``); then name each assignment with submissions not
    graded yet (``classresults.not_graded_yet``). Returns the rows. ``UsageError`` when nothing
    has been graded yet. Like ``export``, it does not wait for a grader command running in the
    workspace: it says so first (``classresults.while_in_use``)."""
    page = course.output_file(to, "report.html")
    if page.suffix.lower() not in (".html", ".htm"):
        raise course.UsageError(f"{page}: the report is a web page, name it .html")
    while_in_use("report", out)
    statuses = {aid: grade_status(aid) for aid in graded_assignments()}
    rows = class_report(statuses)
    if not rows:
        raise course.UsageError(nothing_graded())
    data = page.with_suffix(".json")
    course.write_whole(page, html_page(rows))
    course.write_whole(data, json.dumps(rows, indent=1) + "\n")
    out(text_table(rows))
    ungraded = sum(
        1 for status in statuses.values() for state in status.values() if state != GRADED
    )
    if ungraded:
        out(
            f"not counted: {ungraded} submission(s) without a grade of their own (handed in "
            "again since they were graded, not graded yet, or grading failed): run autograde"
        )
    out(f"report: {page} (its rows: {data})")
    for line in not_graded_yet(statuses=statuses):
        out(line)
    return rows
