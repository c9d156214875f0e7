"""Packaging: the conda route lists what pyproject.toml lists; nothing private is tracked."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from conftest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _name(requirement):
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _spec(requirement):
    return requirement.replace(" ", "").lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_specs = {_name(d): _spec(d) for d in conda if _name(d) not in ("python", "pip")}
    pyproject_specs = {_name(d): _spec(d) for d in project["dependencies"]}
    assert conda_specs == pyproject_specs, (
        f"only in environment.yml: {set(conda_specs.items()) - set(pyproject_specs.items())}; "
        f"only in pyproject.toml: {set(pyproject_specs.items()) - set(conda_specs.items())}"
    )
    assert "-e ." in pip, "environment.yml must install the project itself through pip"
    python = next(d for d in conda if _name(d) == "python")
    assert python.replace(" ", "") == "python" + project["requires-python"]


def test_data_ships_with_origin_and_licence():
    readme = (REPO / "lib" / "backprop" / "datafiles" / "README.md").read_text()
    assert "UCI" in readme and "CC BY 4.0" in readme


def test_the_wheel_ships_the_library_its_data_and_the_grader_without_build_warnings(tmp_path):
    """What ``pip install`` builds: every module and the data files, and no warning from
    setuptools (a deprecated setting stops building once its deadline passes)."""
    source = tmp_path / "source"  # a copy: building in place would leave build/ in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("lib", "grader"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    output = build.stdout + build.stderr
    warnings = [line for line in output.splitlines() if "Warning:" in line]
    assert not warnings, "\n".join(warnings)
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{package}/{path.relative_to(folder).as_posix()}"
        for package, folder in (
            ("backprop", REPO / "lib" / "backprop"),
            ("grader", REPO / "grader"),
        )
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "backprop/datafiles/digits.npz" in expected
    assert expected <= shipped, sorted(expected - shipped)


def test_no_grading_state_or_machine_paths_tracked():
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    private = [
        f for f in files if re.search(r"(gradebook\.db|(^|/)(submitted|autograded|feedback)/)", f)
    ]
    assert not private, private
    local = [str(REPO), str(REPO.parent), str(Path.home())]
    for f in files:
        path = REPO / f
        if path.suffix in {".py", ".md", ".ipynb", ".toml", ".yml", ""} and path.is_file():
            text = path.read_text(errors="ignore")
            found = [p for p in local if f"{p}/" in text]
            assert not found, f"{f} names a path of this machine: {found}"


def test_code_passes_ruff():
    from shutil import which

    ruff = which("ruff")
    result = subprocess.run(
        [ruff, "check", "--quiet", "."], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
