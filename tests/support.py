"""Test support: the real CLI as a function, and a generator of mixed NDJSON input."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RTDP = shutil.which("rtdp", path=str(Path(sys.executable).parent)) or "rtdp"


@dataclass(frozen=True)
class Corpus:
    """An NDJSON file and what a correct pipeline must make of it."""

    path: Path
    lines: int  # non-blank lines
    valid_event_ids: frozenset[str]
    bad_lines: frozenset[str]


def make_corpus(path: Path, n: int, seed: int = 7, bad_ratio: float = 0.05) -> Corpus:
    """``n`` non-blank lines: valid events (some re-sent), and invalid lines of several kinds."""
    rng = random.Random(seed)
    valid: set[str] = set()
    bad: set[str] = set()
    out: list[str] = []
    for i in range(n):
        if rng.random() < bad_ratio:
            kind = rng.randrange(4)
            line = [
                f'{{"event_id": "bad{i}", "trunc',
                f'["not", "an", "object", {i}]',
                json.dumps({"event_id": f"bad{i}", "event_type": "page_view",
                            "event_timestamp": "never", "anonymous_id": "a"}),
                json.dumps({"event_id": f"bad{i}", "event_type": "teleport",
                            "event_timestamp": 1790000000 + i, "anonymous_id": "a"}),
            ][kind]
            bad.add(line)
        else:
            event_id = f"e{i:07d}" if rng.random() > 0.03 or not valid else rng.choice(
                sorted(valid)[-50:])
            ts = 1_790_000_000 + i * 0.5
            iso = f"2026-09-21T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i:06d}Z"
            line = json.dumps({
                "event_id": event_id,
                "event_type": rng.choice(["page_view", "PRODUCT_VIEW", " add_to_cart "]),
                "event_timestamp": ts if rng.random() < 0.3 else iso,
                "anonymous_id": f"anon{rng.randrange(300)}",
                "page_url": f"https://shop.example/p/{i % 97}",
                "x_custom": {"n": i},
            })
            valid.add(event_id)
        out.append(line)
        if rng.random() < 0.01:
            out.append("")  # blank lines are not events
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return Corpus(path, n, frozenset(valid), frozenset(bad))


def run_rtdp(*args: str, env: dict[str, str] | None = None,
             timeout: float = 300) -> dict[str, object]:
    """Run the real CLI; return the JSON summary on its last line."""
    proc = subprocess.run([RTDP, *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    assert proc.returncode == 0, f"rtdp {' '.join(args)} failed:\n{proc.stderr}\n{proc.stdout}"
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
