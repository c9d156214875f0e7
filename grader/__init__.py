"""The instructor's command line: ``python -m grader <command>``.

Built on nbgrader's Python API with the configuration in ``grader/nbgrader_config.py``.
"""

import sys

# jsonschema, imported by nbformat, compiles about 40 IRI grammars when ``rfc3987_syntax`` is
# installed: some 2 s of every grader process's start (the command and each worker), for a
# string format that no notebook schema uses. Without the module jsonschema skips that format.
sys.modules.setdefault("rfc3987_syntax", None)
