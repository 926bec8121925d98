"""The default lead magnet builds into a small, complete PDF."""

import importlib.util
from pathlib import Path

MAGNETS = Path(__file__).resolve().parent.parent / "mailer" / "magnets"
SOURCE = MAGNETS / "handbook.md"


def load_builder():
    # Loaded by path so the test does not depend on how the package is installed or configured.
    spec = importlib.util.spec_from_file_location("build_handbook", MAGNETS / "build_handbook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_handbook_source_has_25_ways() -> None:
    headings = [line for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.startswith("### ")]
    assert len(headings) == 25
    assert [h.split(".", 1)[0] for h in headings] == [f"### {n}" for n in range(1, 26)]


def test_build_handbook_writes_small_pdf(tmp_path: Path) -> None:
    builder = load_builder()
    target = tmp_path / "handbook.pdf"
    builder.build_handbook(SOURCE, target)
    data = target.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(data) < 200 * 1024
    items = [text for kind, text in builder.parse_handbook(SOURCE.read_text(encoding="utf-8")) if kind == "item"]
    assert len(items) == 25


def test_build_handbook_is_reproducible(tmp_path: Path) -> None:
    builder = load_builder()
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    builder.build_handbook(SOURCE, first)
    builder.build_handbook(SOURCE, second)
    assert first.read_bytes() == second.read_bytes()
