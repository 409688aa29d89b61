"""Classic engine speed and memory, the engine alone with OCR; prints JSON.

- Wall time of `ClassicEngine.decompose` on a 1024x1024 and a 2048x2048 synthetic poster (the
  same seed drawn at both sizes), after one warm-up run that loads the OCR model: the median of
  --runs runs each. Targets: 1024 in at most 2.5 s, 2048 at most 4.5x the 1024 time.
- Peak resident memory of a fresh subprocess that loads the engine, warms it up on a small image,
  loads the 2048x2048 poster from a .npy file and decomposes it (VmHWM from /proc: everything,
  onnxruntime's arenas included), beside its peak before the big poster. Target: under 1.5 GB.
- With --profile, the cumulative time of the engine's stages (cProfile) on the 1024 poster.

The machine is shared, so medians, not minima.

Usage: python -m bench.engine_speed [--runs 3] [--seed 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from samples.synthetic import make_poster
from services.common.options import JobOptions
from services.decompose.engines.classic import ClassicEngine

TARGET_1024_S = 2.5
TARGET_RATIO = 4.5
TARGET_PEAK_MB = 1536.0
STAGES = (
    ("engine_speed.py", "decompose"),
    ("ocr.py", "read"),
    ("ocr.py", "_read_korean"),
    ("text.py", "extract_text"),
    ("background.py", "estimate_plate"),
    ("elements.py", "find_elements"),
    ("background.py", "fill_background"),
    ("assemble.py", "assemble"),
)


def decompose(engine: ClassicEngine, image: np.ndarray) -> int:
    """Runs the engine to the end and returns the layer count."""
    return len(list(engine.decompose(image, JobOptions(), lambda step, total: None, lambda: False)))


def timed(engine: ClassicEngine, image: np.ndarray, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        decompose(engine, image)
        seconds.append(time.perf_counter() - started)
    return seconds


def high_water_mb() -> float:
    """This process's peak resident memory (MB), from /proc (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a child would report its parent's.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024.0


def peak_memory_mb(image: np.ndarray) -> dict[str, float]:
    """Peak RSS (MB) of a fresh process before and after decomposing `image`.

    The poster travels as a .npy file, so the generator's own memory stays out of the child's peak.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/poster.npy"
        np.save(path, image)
        code = (
            "import json\n"
            "import numpy as np\n"
            "from bench.engine_speed import decompose\n"
            "from services.decompose.engines.classic import ClassicEngine\n"
            "engine = ClassicEngine()\n"
            "decompose(engine, np.full((256, 256, 3), 200, np.uint8))\n"
            f"image = np.load({path!r})\n"
            "from bench.engine_speed import high_water_mb\n"
            "before = high_water_mb()\n"
            "decompose(engine, image)\n"
            "print(json.dumps({'warm_peak_mb': before, 'peak_mb': high_water_mb()}))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {key: round(value, 1) for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def stage_profile(engine: ClassicEngine, image: np.ndarray) -> dict[str, float]:
    """Cumulative seconds per engine stage under cProfile (slower than unprofiled; shares matter)."""
    profiler = cProfile.Profile()
    profiler.runcall(decompose, engine, image)
    cumulative = {
        (path.rsplit("/", 1)[-1], name): timing[3]
        for (path, _, name), timing in pstats.Stats(profiler).stats.items()  # type: ignore[attr-defined]
    }
    return {f"{file}:{name}": round(cumulative.get((file, name), 0.0), 3) for file, name in STAGES}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    engine = ClassicEngine()
    small, large = make_poster(args.seed, 1024, 1024).image, make_poster(args.seed, 2048, 2048).image
    decompose(engine, small)  # loads the OCR model
    at_1024 = timed(engine, small, args.runs)
    at_2048 = timed(engine, large, args.runs)
    median_1024, median_2048 = statistics.median(at_1024), statistics.median(at_2048)
    memory = peak_memory_mb(large)
    report: dict[str, object] = {
        "seed": args.seed,
        "runs": args.runs,
        "seconds_1024": round(median_1024, 3),
        "seconds_2048": round(median_2048, 3),
        "ratio_2048_to_1024": round(median_2048 / median_1024, 2),
        "all_seconds_1024": [round(value, 3) for value in at_1024],
        "all_seconds_2048": [round(value, 3) for value in at_2048],
        "memory_2048": memory,
        "met": {
            "seconds_1024": median_1024 <= TARGET_1024_S,
            "ratio_2048_to_1024": median_2048 / median_1024 <= TARGET_RATIO,
            "peak_memory_2048": memory["peak_mb"] < TARGET_PEAK_MB,
        },
    }
    if args.profile:
        report["profile_1024"] = stage_profile(engine, small)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
