"""Coverage-guided fuzzing (atheris) of the content codec, id, token and JSON validation.

The harness is ``tests/support/atheris_harness.py``. With atheris installed
(a cp311 manylinux wheel of atheris 3.0.0 exists) it runs as a subprocess for
a bounded number of inputs with a fixed seed, starting from a corpus of valid
inputs (``seed_corpus``); atheris exits non-zero and
prints the crashing input if any target raises something other than the
expected typed error or breaks a round trip. Without atheris the same
targets run on seeded random inputs, so the test never silently does nothing.
"""

from __future__ import annotations

import importlib.util
import random
import re
import subprocess
import sys
from pathlib import Path

from support import atheris_harness

HARNESS = Path(atheris_harness.__file__)
RUNS = 100_000


def test_codec_and_validation_fuzzing(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        rng = random.Random(1)
        seeds = atheris_harness.seed_corpus()
        for example in seeds:
            atheris_harness.one(example)
        for _ in range(RUNS // 10):  # mutate the seeds a little, or send noise
            example = bytearray(rng.choice(seeds) if rng.random() < 0.5 else b"")
            for _ in range(rng.randrange(1, 8)):
                example.insert(rng.randrange(len(example) + 1), rng.randrange(256))
            atheris_harness.one(bytes(example))
        print(f"atheris not installed: {RUNS // 10} seeded random inputs, 0 crashes")
        return
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, example in enumerate(atheris_harness.seed_corpus()):
        (corpus / f"seed-{number}").write_bytes(example)
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-runs={RUNS}",
            "-seed=1",
            "-max_len=512",
            "-len_control=0",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    coverage = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", output)
    assert done and int(done.group(1)) == RUNS, output[-2000:]
    print(
        f"atheris: {done.group(1)} inputs in {done.group(2)} s over 5 targets (codec round "
        f"trip, raw_json blocks, ids and keys, page tokens, JSON fields): 0 crashes; "
        f"coverage {coverage[0][0]} -> {coverage[-1][0]} edges, corpus {coverage[0][2]} -> "
        f"{coverage[-1][2]} inputs"
    )
