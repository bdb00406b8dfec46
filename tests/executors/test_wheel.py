"""evalfleet's own wheel: deterministic, cached, and installs as the code that built it."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import evalfleet
from evalfleet.executors import wheel as wheel_module
from evalfleet.executors.wheel import own_wheel, package_files


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EVALFLEET_CACHE_DIR", str(cache))
    own_wheel.cache_clear()
    yield cache
    own_wheel.cache_clear()


def test_the_wheel_is_deterministic_and_cached(fresh_cache: Path) -> None:
    first = own_wheel()
    assert first.sha256 == hashlib.sha256(first.data).hexdigest()
    path = first.path()
    assert path == fresh_cache / "wheels" / first.filename and path.read_bytes() == first.data
    own_wheel.cache_clear()
    again = own_wheel()  # read back from the cache
    assert (again.filename, again.sha256) == (first.filename, first.sha256)

    rebuilt_dir = fresh_cache.parent / "elsewhere"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALFLEET_CACHE_DIR", str(rebuilt_dir))
        own_wheel.cache_clear()
        rebuilt = own_wheel()  # built anew, in memory: the same bytes
    assert rebuilt.data == first.data
    assert not rebuilt_dir.exists()  # building writes nothing; path() does


def test_the_version_carries_a_hash_of_the_content(fresh_cache: Path) -> None:
    built = own_wheel()
    base, _, label = built.version.partition("+")
    assert base == evalfleet.__version__ and label.startswith("sha") and len(label) == 15
    assert built.filename == f"evalfleet-{built.version}-py3-none-any.whl"
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        names = archive.namelist()
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert names == sorted(n for n in names if not n.startswith("evalfleet-")) + [
            f"evalfleet-{built.version}.dist-info/{name}"
            for name in ("METADATA", "WHEEL", "entry_points.txt", "RECORD")
        ]
        meta = archive.read(f"evalfleet-{built.version}.dist-info/METADATA").decode()
    assert f"Version: {built.version}\n" in meta and "Requires-Dist: pydantic" in meta


def test_a_changed_file_changes_the_version(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = own_wheel()
    real = package_files

    def one_byte_more(package: Path) -> list[tuple[str, bytes]]:
        files = real(package)
        return [(name, data + (b"#" if name.endswith("/api.py") else b"")) for name, data in files]

    monkeypatch.setattr(wheel_module, "package_files", one_byte_more)
    own_wheel.cache_clear()
    changed = own_wheel()
    assert changed.version != built.version and changed.sha256 != built.sha256


def test_pip_installs_the_wheel_as_the_source(fresh_cache: Path, tmp_path: Path) -> None:
    """Into a fresh virtualenv (no dependencies needed to compare files and versions)."""
    built = own_wheel()
    with zipfile.ZipFile(io.BytesIO(built.data)) as archive:
        expected = {
            name: archive.read(name)
            for name in archive.namelist()
            if not name.startswith("evalfleet-")
        }
    assert expected == dict(package_files(Path(evalfleet.__file__).resolve().parent))
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "--quiet", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [*uv, "pip", "install", "--quiet", "--offline", "--no-deps", "--python", str(python),
         str(built.path())],
        check=True, timeout=120,
    )  # fmt: skip
    out = subprocess.run(
        [str(python), "-c", "import evalfleet, importlib.metadata as m; "
         "print(m.version('evalfleet')); print(evalfleet.__file__)"],
        check=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert out[0] == built.version
    installed = Path(out[1]).parent
    assert installed.is_relative_to(venv)
    got = {name: data for name, data in package_files(installed) if not name.endswith(".pyc")}
    assert got.keys() == expected.keys()
    assert [name for name in expected if got[name] != expected[name]] == []
    assert (venv / "bin" / "evalfleet").is_file()  # the console script, from entry_points.txt
