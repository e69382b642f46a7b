"""Seeded damage to generated videos, through ``tsf batch`` with decoding workers, as a user's folder would go.

Three hundred inputs: the six bases of tests/_fuzz.py (H.264 in MP4, VP9 in Matroska, VP8 in WebM, MPEG-4 in AVI, raw
H.264, an animated GIF; 48 frames of 64x48) and mutations of them drawn from one seed: bit flips, truncations, zeroed
ranges, extreme bytes in the first KiB, and header claims of up to 65535x65535 pixels. The batch runs in a child
interpreter through the CLI (CliRunner), so that the memory its decoding workers used is theirs alone
(RUSAGE_CHILDREN: the largest peak resident set of any of them). It must hold that:

- every input gets exactly one record, and no traceback is printed anywhere (the workers' stderr included);
- every failure is a VideoError with its cause: no worker crash, no hang, no other exception;
- no decoding worker's peak exceeds the memory budget (--max-memory 1G here, so that claims of 4K are decoded within
  it and those of 8000x8000 are refused by it) above what the interpreter with torch, PyAV and tsf loaded holds
  before any video;
- the undamaged videos come out ok without a warning;
- every ``ok`` record of a damaged input carries a warning, or equals the undamaged video's record (same frames,
  same probabilities: the damage changed nothing the model saw), or its damage lies only inside coded picture data
  that nothing checks: a packet's payload, or a GIF's colour table and LZW data (``picture_bytes``), in a file
  with no checksum over them (a mutation that also touched bytes outside it passes only if those bytes, changed
  alone, leave every frame as it was). Decoders conceal such damage without an error or a flag (VP8 above all), and MP4,
  AVI, WebM, GIF and raw streams carry no checksum, so no reader can tell those frames from the encoder's. A
  Matroska file has CRC-32 elements over every byte, so damage anywhere in it must be seen; so must every change to
  the structure around the pictures (headers, sizes, indexes, timestamps) and every header claim ("dims").
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests._fuzz import CHECKSUMMED, in_unchecked_pictures, make_bases, mutate

ROOT = Path(__file__).resolve().parents[1]
SEED, COUNT = 0, 300
BUDGET = 2**30
# Run in a child interpreter: CliRunner for the command, then the largest peak of its (waited-for) worker processes.
_BATCH = """
import json, resource, sys
import av, numpy, torch
from typer.testing import CliRunner
from tsf_cli.cli import app
from tsf_cli.media import decode
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = CliRunner().invoke(app, sys.argv[1:])
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"exit_code": result.exit_code, "output": result.output, "exception": repr(result.exception),
                  "loaded_kib": loaded, "workers_kib": workers}))
"""


def test_damaged_videos_through_tsf_batch(checkpoint, tmp_path):
    bases = make_bases(tmp_path / "bases")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    made = {}  # input name -> (base, what the mutation did, the base's offsets it damaged)
    for name, path in bases.items():
        shutil.copyfile(path, inputs / f"000-{name}")
        made[f"000-{name}"] = (name, "undamaged", set(), b"")
    rng = random.Random(SEED)
    for i in range(1, COUNT - len(bases) + 1):
        base = rng.choice(sorted(bases))
        what, damaged, data = mutate(bases[base].read_bytes(), rng, Path(base).suffix)
        (inputs / f"{i:03d}-{base}").write_bytes(data)
        made[f"{i:03d}-{base}"] = (base, what, damaged, data)

    out = tmp_path / "records.jsonl"
    command = ["batch", inputs, "-o", out, "--model", checkpoint, "--workers", "2", "--batch-size", "1"]
    command += ["--frames", "8", "--max-memory", str(BUDGET)]
    run = subprocess.run(
        [sys.executable, "-c", _BATCH, *map(str, command)], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert "Traceback" not in run.stderr + report["output"]
    assert report["exit_code"] == 8 and report["exception"] == "SystemExit(8)"  # some inputs failed, as records

    lines = out.read_text(encoding="utf-8").splitlines()
    records = {Path(r["path"]).name: r for r in map(json.loads, lines)}
    assert len(lines) == COUNT and sorted(records) == sorted(made)
    failures = Counter(r["error"] for r in records.values() if r["status"] == "error")
    assert set(failures) == {"VideoError"}, failures
    assert report["workers_kib"] <= report["loaded_kib"] + BUDGET // 1024

    reference = {base: records[f"000-{base}"] for base in bases}
    assert all(r["status"] == "ok" and r["warnings"] == [] for r in reference.values())
    outcomes, unseen = Counter(), []
    for name, (base, what, damaged, data) in made.items():
        record = records[name]
        if what == "undamaged":
            continue
        if record["status"] == "error":
            outcomes["refused"] += 1
        elif record["warnings"]:
            outcomes["ok, with warnings"] += 1
        elif (record["clips"], record["predictions"]) == (reference[base]["clips"], reference[base]["predictions"]):
            outcomes["ok, as the undamaged video"] += 1
        elif damaged is not None and base not in CHECKSUMMED and in_unchecked_pictures(bases[base], data, damaged):
            outcomes["ok, damage inside unchecked picture data"] += 1
        else:
            unseen.append(f"{name}: {what}")
    assert unseen == [], f"{len(unseen)} damaged inputs came back different without a word ({dict(outcomes)})"
    assert min(outcomes["refused"], outcomes["ok, with warnings"], outcomes["ok, as the undamaged video"]) > 20
