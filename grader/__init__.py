"""The instructor's command line: ``python -m grader <command>``.

Built on nbgrader's Python API with the configuration in ``grader/nbgrader_config.py``.
"""
