"""The Python-native install paths the README documents: `pipx install` and `uv tool install`.

Each installs the project's wheel into its own isolated environment under a temporary home, made from
a python3 that has nothing installed into it, and the plugin then runs through the real kubectl. The
dependencies come from the package registry, as they would for a user (the download caches are shared
with the rest of the machine, so a second session is quick).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fresh_host import KUBECTL, assert_plugin_works, bare_python, host_env
from kubectl_meshdoctor import __version__

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(sys.executable).parent  # pipx and uv come with the dev extra
pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl")


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
                           str(REPO)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = out.glob("kubectl_meshdoctor-*.whl")
    return wheel


def user_cache(name: str) -> str:
    """The machine's own download cache for ``name`` (the tests' homes are temporary)."""
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / name)


def install(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
                          timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def assert_isolated_script(bin_dir: Path, tool_home: Path) -> None:
    """The installed kubectl-meshdoctor runs the tool's own virtualenv, not this test run's."""
    script = bin_dir / "kubectl-meshdoctor"
    assert script.exists(), sorted(p.name for p in bin_dir.iterdir())
    shebang = script.resolve().read_text().splitlines()[0]
    assert shebang.startswith(f"#!{tool_home}"), shebang


def tool_settings(tool: str, root: Path) -> dict[str, str]:
    """Where ``tool`` puts its virtualenvs (root/venvs) and commands (root/bin); the shared download cache."""
    if tool == "pipx":
        return {"PIPX_HOME": str(root / "venvs"), "PIPX_BIN_DIR": str(root / "bin"), "PIPX_MAN_DIR": str(root / "man"),
                "PIP_CACHE_DIR": user_cache("pip")}
    return {"UV_TOOL_DIR": str(root / "venvs"), "UV_TOOL_BIN_DIR": str(root / "bin"), "UV_CACHE_DIR": user_cache("uv"),
            "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}


@pytest.mark.parametrize("command", [["pipx", "install"], ["uv", "tool", "install"]], ids=["pipx", "uv"])
def test_tool_install_then_kubectl_meshdoctor(command, project_wheel, tmp_path):
    if shutil.which(command[0], path=str(TOOLS)) is None:
        pytest.skip(f"{command[0]} is not installed (dev extra)")
    python_bin = bare_python(tmp_path / "python")
    home, root = tmp_path / "home", tmp_path / command[0]
    home.mkdir()
    env = {**host_env(home, python_bin), **tool_settings(command[0], root)}
    install([str(TOOLS / command[0]), *command[1:], "--python", str(python_bin / "python3"), str(project_wheel)], env)
    assert_isolated_script(root / "bin", root / "venvs")
    assert_plugin_works(host_env(home, root / "bin"), tmp_path, __version__)
