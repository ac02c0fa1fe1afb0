"""nmt's int8 linear layer on its two kernels, oneDNN's and fbgemm's, beside float32, at the
shapes of decoding an OPUS-MT-sized model (d_model 512, d_ff 2048, 58,101 pieces) and the
quickstart's (d_model 256, d_ff 1024, 8,000 pieces).

Per layer shape and row count (rows = sentences × beams: 4 is batch 1, 128 is batch 32), the
median time of ``Int8Linear.forward`` (quantizing the input per row, the int8 matmul, scaling
back) with ``kernel="onednn"`` and ``kernel="fbgemm"``, and of the float32 ``nn.Linear``;
alternating, in one process, random weights (a layer's cost does not depend on them). Checks
that the two kernels give the same floats, bit for bit.

    .venv/bin/python benchmarks/int8_kernels.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from nmt.machine import describe
from nmt.models.quantize import Int8Linear, onednn_int8_usable

# (in, out): the OPUS-MT shape's, then the quickstart's (d_model 256, 8,000 pieces), where
# oneDNN took 8–140× as long at one row as at two until Int8Linear padded a single row.
SHAPES = [(512, 512), (512, 2048), (2048, 512), (512, 58101), (256, 1024), (256, 8000)]


def median_us(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 32, 128])
    parser.add_argument("--repeats", type=int, default=21, help="timings per case (median)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    if not onednn_int8_usable():
        raise SystemExit(
            "oneDNN's int8 kernel is not used here (no AVX-512 VNNI): nothing to compare"
        )
    print(f"{'in → out':>13} {'rows':>5} {'onednn µs':>10} {'fbgemm µs':>10} {'float32 µs':>11}"
          f" {'fbgemm/onednn':>14} {'float32/onednn':>15}")  # fmt: skip
    torch.manual_seed(0)
    with torch.inference_mode():
        for width, features in SHAPES:
            linear = nn.Linear(width, features)
            layers = {k: Int8Linear(linear, kernel=k) for k in ("onednn", "fbgemm")}
            for rows in args.rows:
                x = torch.randn(rows, width)
                if not torch.equal(layers["onednn"](x), layers["fbgemm"](x)):
                    raise SystemExit(f"the kernels differ at {width} → {features}, {rows} rows")
                layer_of = {**layers, "float32": linear}
                cases = {name: partial(layer, x) for name, layer in layer_of.items()}
                for fn in cases.values():  # warm-up
                    fn()
                times: dict[str, list[float]] = {name: [] for name in cases}
                for _ in range(3):  # alternating, so that a slow moment hits all three
                    for name, fn in cases.items():
                        times[name].append(median_us(fn, args.repeats))
                t = {name: statistics.median(v) for name, v in times.items()}
                shape = f"{width:>5} → {features:<5} {rows:>5}"
                times_us = f"{t['onednn']:>10.0f} {t['fbgemm']:>10.0f} {t['float32']:>11.0f}"
                ratios = f"{t['fbgemm'] / t['onednn']:>13.2f}× {t['float32'] / t['onednn']:>14.2f}×"
                print(f"{shape} {times_us} {ratios}")


if __name__ == "__main__":
    main()
