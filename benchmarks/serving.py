"""Serving benchmark: inference latency and HTTP throughput, PyTorch vs ONNX.

For the AirPassengers forecaster (the default ``lstmkit forecast`` model, trained into
``runs/air_passengers/`` when absent) and the IMDB ``imdb`` preset classifier (``runs/imdb``
from ``python benchmarks/imdb.py --save runs/imdb``; its row is skipped when absent)
it measures, for each backend (torch, and onnx when ``lstmkit.runtime`` and an export are
available; the export is made with ``lstmkit export`` when missing):

1. the predictor alone (no HTTP) at batch 1: p50 / p99 latency of ``predict()`` (the
   forecast after the training data) or ``predict_proba([review])`` (one test review);
2. the same through ``lstmkit serve`` over HTTP, one request at a time;
3. throughput under load: ``--clients`` concurrent clients (default 16) for
   ``--duration`` seconds (default 60) against the server: requests/s, errors, p99.

Writes the ``serving`` section of benchmarks/RESULTS.md.

    python benchmarks/serving.py                          # everything, 60 s loads
    python benchmarks/serving.py --duration 10 --no-write  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402

from lstmkit.errors import LstmkitError  # noqa: E402
from lstmkit.runtime.session import export_folder  # noqa: E402
from lstmkit.serving import load_predictor  # noqa: E402

CLI = [sys.executable, "-c", "from lstmkit.cli import main; main()"]
CAVEAT = (
    "HTTP latencies add the client's and the server's turns on the same cores, so on a "
    "machine shared with other jobs they vary from run to run more than the predictor's."
)


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _imdb_archive() -> Path:
    """The IMDB archive: ``shared/data`` beside the checkout (or beside its parent, for a
    worktree), else lstmkit's download location."""
    from lstmkit.data.imdb import default_archive_path

    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared/data/aclImdb_v1.tar.gz").exists():
            return base / "shared/data/aclImdb_v1.tar.gz"
    return default_archive_path()


def _ms(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of durations in seconds, in milliseconds."""
    arr = np.asarray(samples) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def ensure_forecaster(path: Path, threads: int) -> Path:
    """The AirPassengers model of a default ``lstmkit forecast`` run (trained if absent)."""
    if not (path / "config.json").exists():
        out = path.parent
        print(f"training the AirPassengers forecaster into {out} ...", flush=True)
        subprocess.run(
            [*CLI, "forecast", "--out", str(out), "--no-progress"], check=True, env=_env(threads)
        )
    return path


def ensure_export(model: Path, threads: int) -> Path | None:
    """The ONNX export of ``model`` (made with ``lstmkit export`` when missing), or None
    when this lstmkit has no ONNX runtime."""
    try:
        import lstmkit.runtime  # type: ignore[import-not-found]  # noqa: F401
    except ImportError as err:
        print(f"no ONNX backend ({err}); onnx rows skipped", flush=True)
        return None
    found = export_folder(model)
    if found is None:
        print(f"exporting {model} to ONNX ...", flush=True)
        subprocess.run(
            [*CLI, "export", "--model", str(model), "--format", "onnx"],
            check=True,
            env=_env(threads),
        )
        found = export_folder(model)
    return found


def imdb_review(archive: Path) -> str:
    """A review of median length (in words) from the IMDB test split."""
    from lstmkit.data.imdb import load_imdb

    texts = load_imdb(archive, split="test").texts
    lengths = np.array([len(t.split()) for t in texts])
    return texts[int(np.argmin(np.abs(lengths - np.median(lengths))))]  # median length


def time_predictor(pred: Any, payload: Any, repeats: int) -> list[float]:
    """Latency samples (s) of one prediction on ``payload`` (a review, or None)."""
    call = (lambda: pred.predict_proba([payload])) if payload else (lambda: pred.predict())
    for _ in range(10):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


class Server:
    """``lstmkit serve`` on a free port (``--backend``), until `stop`."""

    def __init__(self, model: Path, backend: str, threads: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [*CLI, "serve", "--model", str(model), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*argv, "--backend", backend, "--threads", str(threads), "--log-level", "warning"],
            env=_env(threads),
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server for {model} ({backend}) exited")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the server did not start within 180 s")
            time.sleep(0.2)
        got = httpx.get(self.url + "/model").json()["backend"]
        assert got == backend, f"asked for {backend}, the server runs {got}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def time_http(url: str, body: dict, repeats: int) -> list[float]:
    """Latency samples (s) of one request at a time over one kept-alive connection."""
    samples = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(repeats + 10):
            start = time.perf_counter()
            r = client.post("/predict", json=body)
            took = time.perf_counter() - start
            r.raise_for_status()
            if i >= 10:
                samples.append(took)
    return samples


async def _load(url: str, body: dict, clients: int, duration: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    r = await client.post("/predict", json=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        took = time.perf_counter() - began
    p50, p99 = _ms(latencies)
    return {
        "rps": len(latencies) / took,
        "n": len(latencies),
        "errors": errors,
        "p50": p50,
        "p99": p99,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forecaster", type=Path, default=ROOT / "runs/air_passengers/model")
    parser.add_argument("--imdb-model", type=Path, default=ROOT / "runs/imdb")
    parser.add_argument("--imdb-data", type=Path, default=_imdb_archive())
    parser.add_argument("--backends", default="torch,onnx", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=300, help="latency samples per row")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per row")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch / onnxruntime threads (also the servers')"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    load_before = os.getloadavg()[0]
    notes: list[str] = []
    tasks: list[tuple[str, Path, Any, dict]] = []
    fc = ensure_forecaster(args.forecaster, args.threads)
    tasks.append(("AirPassengers forecaster (12 months)", fc, None, {}))
    if (args.imdb_model / "config.json").exists() and args.imdb_data.exists():
        review = imdb_review(args.imdb_data)
        tasks.append(
            (f"IMDB `imdb` classifier (1 review, {len(review.split())} words)", args.imdb_model,
             review, {"texts": [review]})
        )  # fmt: skip
    else:
        notes.append(
            f"IMDB row skipped: no model at {args.imdb_model} (train it with `python "
            f"benchmarks/imdb.py --save runs/imdb`) or no archive at {args.imdb_data}."
        )

    rows = []
    for name, model, payload, body in tasks:
        for backend in backends:
            if backend == "onnx" and ensure_export(model, args.threads) is None:
                notes.append(f"{name}: no ONNX row (lstmkit.runtime is not available).")
                continue
            pred = load_predictor(model, backend, threads=args.threads)
            print(f"{name} [{backend}]: predictor latency ...", flush=True)
            direct = _ms(time_predictor(pred, payload, args.repeats))
            del pred
            server = Server(model, backend, args.threads)
            try:
                print(f"{name} [{backend}]: HTTP latency ...", flush=True)
                http = _ms(time_http(server.url, body, args.repeats))
                print(f"{name} [{backend}]: {args.clients} clients for {args.duration:g} s ...")
                load = asyncio.run(_load(server.url, body, args.clients, args.duration))
            finally:
                server.stop()
            rows.append((name, backend, direct, http, load))
            print(rows[-1], flush=True)

    lines = [
        "## Serving: latency and throughput, PyTorch vs ONNX",
        "",
        f"Batch 1, {args.repeats} timed calls after 10 warm-up calls; HTTP: `lstmkit serve` "
        f"(1 worker) on localhost, one request at a time over a kept-alive connection; "
        f"load: {args.clients} concurrent clients (httpx, asyncio, in one process on the same "
        f"machine) for {args.duration:g} s. Latencies in ms. {args.threads} thread(s) per "
        "prediction for both backends (`--threads`).",
        "",
        "| model | backend | predictor p50 | p99 | HTTP p50 | p99 | load req/s | errors "
        "| load p50 | p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, backend, direct, http, load in rows:
        lines.append(
            f"| {name} | {backend} | {direct[0]:.2f} | {direct[1]:.2f} | {http[0]:.2f} | "
            f"{http[1]:.2f} | {load['rps']:.1f} | {load['errors']} of {load['n']} | "
            f"{load['p50']:.1f} | {load['p99']:.1f} |"
        )
    lines.append(
        f"\nLoad average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the "
        f"run on {os.cpu_count()} cores. {CAVEAT}"
    )
    by = {(n, b): d for n, b, d, _, _ in rows}
    for name, *_ in tasks:
        if (name, "torch") in by and (name, "onnx") in by:
            ratio = by[(name, "torch")][0] / by[(name, "onnx")][0]
            lines.append(f"\n{name}: ONNX predictor p50 is {ratio:.1f}x faster than PyTorch.")
    lines += [f"\n{n}" for n in notes]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("serving", body)


if __name__ == "__main__":
    try:
        main()
    except LstmkitError as err:
        raise SystemExit(f"error: {err}") from None
