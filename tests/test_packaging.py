"""The kit as it ships: the wheel, a non-editable install graded in, the engine's imports.

Issue 8: `pip wheel .` once put ``autograder/<assignment>/`` (hidden graders,
reference implementation, sample submissions) into the wheel. A worker with
the kit installed non-editably then held them under ``sys.prefix``, which the
sandbox mounts read-only into every student's kernel; an editable checkout
hides this, so the tests here build the wheel and install it for real.

The course's own content (``autograder/``, ``source/``, ``solutions/``) is
what the instructor holds; it is compared by name, content and assignment
name, never by a list copied from a run.
"""

import ast
import email
import hashlib
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile

import nbformat
import pytest
from kit import A01, KIT

#: The packages the wheel ships (pyproject.toml, [tool.setuptools.packages.find]).
PACKAGES = ("nndl", "nndl_datasets")
#: The kit's grader marker; a file using it is a hidden grader.
GRADER_MARK = "mark.grade_cell"
#: Course files shorter than this (an empty __init__.py) hold no secret, and match too much to compare.
MIN_SECRET_BYTES = 32
#: What a hostile cell prints its findings after, so the test can find them in the graded notebook.
WALK_TAG = "NNDL-WALK-FINDINGS "


def course_files():
    """The course content only the instructor may hold: relative path -> bytes.

    Every file of ``autograder/`` (hidden graders, reference code, samples),
    ``source/`` (masters with solutions) and ``solutions/``.
    """
    files = {}
    for folder in ("autograder", "source", "solutions"):
        for path in sorted((KIT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path.relative_to(KIT))] = path.read_bytes()
    return files


def assignment_names():
    """The course's assignments: one folder each under ``autograder/``."""
    return sorted(p.name for p in (KIT / "autograder").iterdir() if p.is_dir() and p.name != "__pycache__")


def grader_file_names():
    """Names of the files in the assignments' grader folders (reference.py, samples.py, test_*.py...)."""
    return sorted({p.name for p in (KIT / "autograder").rglob("*") if p.is_file() and "__pycache__" not in p.parts})


# --- 1. The wheel -------------------------------------------------------------------------------

def copy_of_checkout(dest):
    """The files git would commit (tracked and new, not ignored), copied to `dest`.

    The wheel is built from this copy, so pip's ``build/`` and ``*.egg-info``
    land there and the checkout stays as it was.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=KIT, capture_output=True, check=True).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = KIT / relative
        if source.is_file() and not source.is_symlink():  # a tracked file deleted in the work tree is skipped
            (dest / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / relative)
    return dest


def build_wheel(source, out):
    """``pip wheel . --no-deps`` in `source`; the path of the one wheel written to `out`.

    No build isolation: the build backend (setuptools) is taken from this
    environment, so the build needs no network.
    """
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                           "--no-cache-dir", "-q", "-w", str(out)],
                          cwd=source, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The kit's wheel, built from a copy of the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    return build_wheel(copy_of_checkout(base / "src"), base / "dist")


def wheel_problems(names, read):
    """What is wrong with a wheel's contents, one sentence each; [] when nothing.

    Args:
        names: the wheel's file names.
        read: name -> bytes of that file.
    """
    problems = []
    dist_info = [n for n in names if n.split("/")[0].endswith(".dist-info")]
    others = sorted(n for n in names if n not in dist_info and n.split("/")[0] not in PACKAGES)
    if others:
        problems.append(f"files outside the packages {PACKAGES}: {others}")
    assignments, grader_names = set(assignment_names()), set(grader_file_names())
    by_digest = {hashlib.sha256(data).hexdigest(): path for path, data in course_files().items()
                 if len(data) >= MIN_SECRET_BYTES}
    for name in sorted(names):
        parts = name.split("/")
        if "autograder" in parts or set(parts) & assignments:
            problems.append(f"{name}: under a course folder (autograder/ or an assignment's)")
        if parts[-1].startswith("test_") and parts[-1].endswith(".py"):
            problems.append(f"{name}: a test file")
        if parts[-1].endswith(".ipynb") or set(parts) & {"source", "release", "solutions", "notebooks"}:
            problems.append(f"{name}: a notebook or a notebook folder")
        data = read(name)
        if hashlib.sha256(data).hexdigest() in by_digest:
            problems.append(f"{name}: the same bytes as the course's {by_digest[hashlib.sha256(data).hexdigest()]}")
        elif parts[-1] in grader_names and (GRADER_MARK.encode() in data or any(a.encode() in data for a in assignments)):
            problems.append(f"{name}: named like a hidden-grader file, and about an assignment or a grader")
    return problems


def test_wheel_ships_the_engine_and_no_course_content(wheel):
    """The wheel holds every module of nndl/ and nndl_datasets/, and nothing of autograder/, source/, solutions/?"""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        problems = wheel_problems(names, archive.read)
    modules = {str(p.relative_to(KIT)) for package in PACKAGES for p in (KIT / package).rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules, "no modules found in the checkout's packages"
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not problems, "the wheel ships what it must not:\n" + "\n".join(problems)


def test_wheel_check_catches_graders_packaged_as_before(tmp_path):
    """Built the old way (``autograder*`` among the packages), the same check names every grader file?"""
    source = copy_of_checkout(tmp_path / "src")
    pyproject = (source / "pyproject.toml").read_text()
    old = re.sub(r'include = \[([^\]]*)\]', r'include = [\1, "autograder*"]', pyproject, count=1)
    assert old != pyproject, "pyproject.toml has no packages.find include list to widen"
    (source / "pyproject.toml").write_text(old)
    with zipfile.ZipFile(build_wheel(source, tmp_path / "dist")) as archive:
        problems = "\n".join(wheel_problems(set(archive.namelist()), archive.read))
    for relative in (p.relative_to(KIT) for p in (KIT / "autograder").rglob("*.py")):
        assert str(relative) in problems, f"{relative} shipped but not reported:\n{problems}"


# --- 2. A non-editable install grades, and its sandbox holds no grader ----------------------------

def dependency_closure(wheel_path, site):
    """The distributions of `site` that the wheel needs, its Requires-Dist followed (no extras of the kit).

    Raises:
        AssertionError: a requirement that `site` does not hold, named.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(site)])}
    with zipfile.ZipFile(wheel_path) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist") or []
    todo, seen = [(Requirement(r), "") for r in requires], set()
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in installed, f"{requirement} (needed by the kit) is not installed in {site}"
        for wanted in ("", *requirement.extras):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(Requirement(r), wanted) for r in installed[name].requires or []]
    return [installed[name] for name in sorted({name for name, _ in seen})]


def copy_distributions(dists, site, prefix, new_site, new_prefix):
    """Put each distribution's recorded files (RECORD) in the new environment, as pip would have.

    Files are hard-linked (copied where the file system refuses); scripts
    in bin/ are rewritten to start the new environment's Python. Returns
    the number of files placed.
    """
    placed = 0
    for dist in dists:
        for recorded in dist.files or ():
            source = pathlib.Path(os.path.normpath(site / recorded))
            target = pathlib.Path(os.path.normpath(new_site / recorded))
            if not source.is_file():
                continue  # listed in RECORD but gone (a byte-compiled file, say)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent == new_prefix / "bin" and source.read_bytes()[:2] == b"#!":
                target.write_bytes(source.read_bytes().replace(str(prefix).encode(), str(new_prefix).encode()))
                target.chmod(source.stat().st_mode)
            else:
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)
            placed += 1
    return placed


def fresh_environment(folder, wheel_path):
    """A new venv holding the kit's wheel and only the dependencies it declares.

    The dependencies come from this environment's site-packages (no
    download); the kit's own editable install is not among them, since only
    the wheel's Requires-Dist is followed. The wheel goes in with pip.
    """
    site = pathlib.Path(sysconfig.get_paths()["purelib"])
    prefix = pathlib.Path(sys.prefix)
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    new_site = folder / site.relative_to(prefix)
    assert new_site.is_dir(), f"the new venv has no {new_site}"
    copy_distributions(dependency_closure(wheel_path, site), site, prefix, new_site, folder)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python"), "install",
                           "--no-deps", "--no-index", "--no-cache-dir", "-q", str(wheel_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"pip install of the wheel failed:\n{done.stdout}\n{done.stderr}"
    return folder, new_site


def clean_env(venv):
    """Our environment without anything pointing at this checkout or its venv; `venv` first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"])
    return env


#: The hostile cell's search, also run by the test outside any sandbox to show it finds what it looks for.
WALKER = '''
import hashlib, json, os, stat, sys, sysconfig

def nndl_walk(roots, digests, names, assignments, kit_root, skip=("/proc", "/sys")):
    """Every course file reachable from `roots`: copies, graders, grader-named files, assignment folders."""
    found = {"copies": [], "graders": [], "named": [], "folders": []}
    seen, kit_files, visited = 0, [], set()
    site = sysconfig.get_paths()["purelib"]
    sizes = {size for size, _ in digests}
    for root in roots:
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
            for d in dirs:
                if d in assignments and os.path.join(folder, d) not in found["folders"]:
                    found["folders"].append(os.path.join(folder, d))
            for name in files:
                path = os.path.join(folder, name)
                if path in visited:
                    continue
                visited.add(path)
                seen += 1
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                if path.startswith(site + "/nndl") and "__pycache__" not in path:
                    kit_files.append(os.path.relpath(path, site))
                grader_like = name.startswith("test_") and name.endswith(".py")
                if info.st_size not in sizes and not grader_like and name not in names:
                    continue
                try:
                    with open(path, "rb") as handle:
                        data = handle.read(1 << 20)
                        digest = hashlib.sha256(data)
                        while info.st_size in sizes and (chunk := handle.read(1 << 20)):
                            digest.update(chunk)
                except OSError:
                    continue
                if (info.st_size, digest.hexdigest()) in digests:
                    found["copies"].append(path)
                if grader_like and GRADER_MARK in data:
                    found["graders"].append(path)
                if name in names and (GRADER_MARK in data or any(a.encode() in data for a in assignments)):
                    found["named"].append(path)
    return {"seen": seen, "found": found, "kit_files": sorted(kit_files), "prefix": sys.prefix,
            "checkout_visible": os.path.exists(kit_root)}
'''.replace("GRADER_MARK", repr(GRADER_MARK.encode()))


def walker_arguments():
    """The walker's knowledge of the course: digests, grader file names, assignments, the checkout."""
    digests = sorted((len(data), hashlib.sha256(data).hexdigest()) for data in course_files().values()
                     if len(data) >= MIN_SECRET_BYTES)
    return ({tuple(d) for d in digests}, set(grader_file_names()), set(assignment_names()), str(KIT))


def hostile_cell():
    """A cell that searches the whole sandbox and the environment for course files, and prints what it found."""
    digests, names, assignments, kit_root = walker_arguments()
    return (WALKER + textwrap.dedent(f"""
        nndl_findings = nndl_walk(["/", sysconfig.get_paths()["purelib"]], {digests!r}, {names!r},
                                  {assignments!r}, {kit_root!r})
        for kind in nndl_findings["found"]:
            nndl_findings["found"][kind] = nndl_findings["found"][kind][:50]
        print({WALK_TAG!r} + json.dumps(nndl_findings))
        """))


def test_walker_finds_course_files_where_they_are():
    """Outside any sandbox, over the checkout's course folders, the hostile search finds the graders?"""
    namespace = {}
    exec(WALKER, namespace)  # noqa: S102 - the hostile cell's own code, run here on the checkout
    digests, names, assignments, kit_root = walker_arguments()
    result = namespace["nndl_walk"]([str(KIT / "autograder"), str(KIT / "solutions")],
                                    digests, names, assignments, kit_root)
    found = result["found"]
    for path in (KIT / "autograder").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.stat().st_size >= MIN_SECRET_BYTES:
            assert str(path) in found["copies"], f"{path} not found by content"
    assert found["named"], "no grader file found by its name"
    assert any(os.path.basename(p).startswith("test_") for p in found["graders"]), "no grader found by its marker"
    assert str(KIT / "autograder" / A01) in found["folders"]
    assert any(p.startswith(str(KIT / "solutions")) for p in found["copies"])
    assert result["checkout_visible"]


@pytest.fixture(scope="module")
def installed_kit(wheel, tmp_path_factory):
    """``(venv, site-packages, env, workdir)``: the wheel installed in a fresh venv, checked to import from there.

    `env` runs that venv's commands with nothing pointing at the checkout;
    `workdir` is an empty folder to run them in (not the checkout: no
    ``nndl/`` beside them to import by mistake).
    """
    started = time.monotonic()
    base = tmp_path_factory.mktemp("installed")
    venv, site = fresh_environment(base / "venv", wheel)
    env = clean_env(venv)
    workdir = base / "elsewhere"
    workdir.mkdir()
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         ("import json, sys, nndl, nndl.course, nndl.record.step, nndl_datasets\n"
          "print(json.dumps({'course': nndl.course.__file__, 'step': nndl.record.step.__file__,"
          " 'datasets': nndl_datasets.__file__, 'nndl': list(nndl.__path__), 'path': sys.path}))")],
        cwd=workdir, env=env, capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr
    where = json.loads(probe.stdout)
    for key in ("course", "step", "datasets"):
        assert pathlib.Path(where[key]).is_relative_to(site), f"{key} imported from {where[key]}, not {site}"
    assert all(pathlib.Path(p).is_relative_to(site) for p in where["nndl"]), where["nndl"]
    assert not [p for p in where["path"] if p and pathlib.Path(p).resolve().is_relative_to(KIT)], where["path"]
    pointing_home = [p.name for p in site.glob("*.pth") if str(KIT) in p.read_text()]
    assert not pointing_home, f".pth files pointing at the checkout: {pointing_home}"
    print(f"fresh venv with the wheel installed in {time.monotonic() - started:.1f} s")
    return venv, site, env, workdir


@pytest.mark.slow
def test_installed_kit_grades_and_its_sandbox_reaches_no_grader(installed_kit, wheel, tmp_path):
    """Kit installed from the wheel into a fresh venv: a01 graded, and a kernel searching / finds no course file?"""
    from nndl import course
    from nndl.cli import samples
    from nndl.record import gradebook

    venv, _, env, workdir = installed_kit
    # The course: the instructor's a01 master, hidden graders and nbgrader_config.py, course content
    # from the checkout, none of it installed. Written from this process, whose kit is the checkout's
    # (the installed kit cannot write it: see the next test).
    root = tmp_path / "course"
    shutil.copytree(KIT / "source" / A01, root / "source" / A01)
    course.write_course_config(root, graders=KIT / "autograder")
    notebook, batch = samples.assignment_samples(KIT, A01)
    solution = next(s for s in batch if s.student == "s01-solution")
    nb = json.loads(solution.content)
    nb["cells"].append(nbformat.v4.new_code_cell(hostile_cell()))
    walker = samples.Sample("h-walks-the-sandbox", "the solution, with a cell searching / for course files",
                            json.dumps(nb), dict(solution.expected))
    samples.write_submissions(root, A01, [solution, walker], notebook)

    started = time.monotonic()
    graded = subprocess.run([str(venv / "bin" / "nndl"), "--course", str(root), "autograde", A01, "--workers", "2"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=900, check=False)
    print(f"a01 graded by the installed kit in {time.monotonic() - started:.1f} s")
    assert graded.returncode == 0, f"nndl autograde in the fresh venv failed:\n{graded.stdout}\n{graded.stderr}"

    _, rows = gradebook.cell_scores(f"sqlite:///{root}/gradebook.db", A01)
    scores = {row["student"]: row for row in rows}
    for sample in (solution, walker):
        got = {grade_id: scores[sample.student]["scores"][grade_id] for grade_id in sample.expected}
        assert got == sample.expected, f"{sample.student}: {got}"

    graded_nb = nbformat.read(str(root / "autograded" / walker.student / A01 / notebook), as_version=4)
    printed = [line for cell in graded_nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
               for line in o.get("text", "").splitlines() if line.startswith(WALK_TAG)]
    assert len(printed) == 1, "the hostile cell's findings are not in the graded notebook"
    result = json.loads(printed[0][len(WALK_TAG):])
    assert result["prefix"] == str(venv), "the kernel did not run in the fresh venv"
    assert result["seen"] > 1000, f"the search saw only {result['seen']} files"
    shipped = {p for p in zipfile.ZipFile(wheel).namelist() if p.split("/")[0] in PACKAGES}
    assert shipped <= set(result["kit_files"]), "the search did not see the installed kit under sys.prefix"
    assert result["found"] == {"copies": [], "graders": [], "named": [], "folders": []}, (
        "the student's kernel reached course files:\n" + json.dumps(result["found"], indent=1))
    assert not result["checkout_visible"]


@pytest.mark.slow
def test_course_made_by_the_installed_kit_grades_in_the_sandbox(installed_kit, tmp_path):
    """A course folder written by the installed kit has the kit's sandboxed step in nbgrader's autograde pipeline?"""
    venv, _, env, workdir = installed_kit
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         ("import json, sys\n"
          "from nndl import course\n"
          "course.write_course_config(sys.argv[1])\n"
          "steps = course.load_config(sys.argv[1]).Autograde.get('autograde_preprocessors', [])\n"
          "print(json.dumps([getattr(s, '__name__', str(s)) for s in steps]))"),
         str(tmp_path / "course")], cwd=workdir, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "GradeInSandbox" in json.loads(done.stdout), done.stdout


# --- 3 and 4. The engine's imports ---------------------------------------------------------------

def package_sources(package):
    """``{module name: path}`` of every module of a top-level package of the checkout."""
    modules = {}
    for path in sorted((KIT / package).rglob("*.py")):
        parts = list(path.relative_to(KIT).with_suffix("").parts)
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(source, module, is_package=False):
    """Every module name `source` imports, anywhere in it (top level or inside functions).

    ``from X import n`` yields ``X`` and ``X.n`` (n may be a submodule);
    relative imports are resolved against `module`; ``import_module("X")``
    and ``__import__("X")`` with a literal name count too.
    """
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            names.append((base, [alias.name for alias in node.names]))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            names.append(node.args[0].value)
    return names


def test_engine_never_imports_course_content():
    """No module of nndl/ or nndl_datasets/ imports autograder (the course's graders), in any form?"""
    offenders = []
    for package in PACKAGES:
        for module, path in package_sources(package).items():
            for name in imported_names(path.read_text(), module, path.name == "__init__.py"):
                base, members = name if isinstance(name, tuple) else (name, [])
                if base.split(".")[0] == "autograder" or (base == "" and "autograder" in members):
                    offenders.append(f"{path.relative_to(KIT)} imports {base or members}")
    assert not offenders, "\n".join(offenders)


def test_import_scanner_sees_every_form_and_no_docstring():
    """The scanner finds plain, from-, and importlib imports, and ignores the words in a docstring?"""
    source = textwrap.dedent('''
        """Never `from autograder import x`."""
        import autograder.a01
        def f():
            from autograder.a01 import reference
            import importlib
            return importlib.import_module("autograder.a01.samples")
        ''')
    names = imported_names(source, "nndl.x")
    expected = ["autograder.a01", ("autograder.a01", ["reference"]), "importlib", "autograder.a01.samples"]
    assert sorted(map(str, names)) == sorted(map(str, expected))


def import_graph(modules):
    """``{module: set of modules it imports}`` among `modules` (name -> path).

    Importing ``a.b.c`` first runs the package ``a.b``, so that counts as
    an import of ``a.b`` too, except where ``a.b`` is the importer's own
    ancestor (already being imported; only names defined in it count then).
    """
    graph = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1 + is_package)}
        edges = set()
        for name in imported_names(path.read_text(), module, is_package):
            base, members = name if isinstance(name, tuple) else (name, [])
            targets = [f"{base}.{m}" for m in members if f"{base}.{m}" in modules]
            if base in modules and (base not in own_packages or len(targets) < len(members)):
                targets.append(base)  # the package's own code runs, or a name defined in it is used
            parts = base.split(".")
            targets += [p for p in (".".join(parts[:i]) for i in range(1, len(parts)))
                        if p in modules and p not in own_packages]
            edges |= {t for t in targets if t != module}
        graph[module] = edges
    return graph


def find_cycles(graph):
    """The import cycles of `graph`, each as a list of modules, first one repeated at the end; [] when none.

    One cycle per strongly connected component (Tarjan's algorithm), plus self-imports.
    """
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_shortest_cycle(graph, min(component), component) for component in components)


def _shortest_cycle(graph, start, component):
    """The shortest path from `start` back to itself inside `component` (breadth first)."""
    parents, frontier = {start: None}, [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & component):
                if nxt == start:
                    path = [node]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return path[::-1] + [start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def test_cycle_finder_names_the_cycle():
    """On small graphs: a three-step cycle named in order, a self-import found, an acyclic graph passed?"""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"a"}, "b": set()}) == [["a", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b", "a"], ["c", "d", "c"]]


def test_import_graph_resolves_submodules_and_packages(tmp_path):
    """``from p import sub``, relative imports and a package's own code all become edges?"""
    (tmp_path / "p" / "q").mkdir(parents=True)
    files = {"p/__init__.py": "from p.q import r\n", "p/q/__init__.py": "",
             "p/q/r.py": "def f():\n    from .. import s\n", "p/s.py": "from . import q\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    modules = {"p": tmp_path / "p/__init__.py", "p.q": tmp_path / "p/q/__init__.py",
               "p.q.r": tmp_path / "p/q/r.py", "p.s": tmp_path / "p/s.py"}
    graph = import_graph(modules)
    assert graph == {"p": {"p.q", "p.q.r"}, "p.q": set(), "p.q.r": {"p.s"}, "p.s": {"p.q"}}
    assert find_cycles(graph) == []
    (tmp_path / "p/q/__init__.py").write_text("from p import s\n")
    assert find_cycles(import_graph(modules)) == [["p.q", "p.s", "p.q"]]


def test_engine_has_no_import_cycle():
    """The import graph of nndl (imports in functions included) has no cycle?"""
    modules = {}
    for package in PACKAGES:
        modules.update(package_sources(package))
    graph = import_graph(modules)
    assert sum(map(len, graph.values())) > 20, "the import graph is implausibly small"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in the engine:\n" + "\n".join(" -> ".join(c) for c in cycles)
