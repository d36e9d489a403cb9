"""Every file the README, the docs, the configs and the code point to exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A repository path: one of the top-level folders, then a file with an extension we ship.
REFERENCE = re.compile(
    r"(?<![\w./<-])((?:docs|benchmarks|conf|sweeps|tests|src)/[\w./-]*\w\.(?:md|py|sh|yaml|png))")
SOURCES = ("README.md", "sweeps/README.md", "docs/*.md", "src/maskgit/**/*.py", "conf/**/*.yaml",
           "benchmarks/*.py", "benchmarks/*.sh", "*.py")


def references(text: str) -> list[str]:
    return REFERENCE.findall(text)


def test_the_pattern_finds_repository_paths_and_skips_others():
    text = ("see docs/decoding.md, benchmarks/gpu_check.sh and <run>/docs/x.png; "
            "logs/train/x.ckpt is not ours; docs/lab-architecture.md")
    assert references(text) == ["docs/decoding.md", "benchmarks/gpu_check.sh", "docs/lab-architecture.md"]


def test_every_reference_resolves():
    files = sorted({p for pattern in SOURCES for p in ROOT.glob(pattern) if p.is_file()})
    assert len(files) > 60
    missing = [f"{f.relative_to(ROOT)}: {ref}" for f in files for ref in references(f.read_text())
               if not (ROOT / ref).exists()]
    assert not missing, missing
