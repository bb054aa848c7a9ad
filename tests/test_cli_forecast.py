"""``lstmkit forecast`` / ``lstmkit predict``: the demo, a CSV run, and every bad input."""

import json
import os
import platform
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli import main
from lstmkit.io import save_model_dir

TINY = ["--max-epochs", "3", "--hidden-size", "8", "--no-progress"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the console entry point in-process; return (exit code, stdout, stderr)."""
    old = sys.argv
    sys.argv = ["lstmkit", *argv]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def _csv(path: Path, n: int = 48, **changes) -> Path:
    t = np.arange(n)
    df = pd.DataFrame(
        {
            "date": pd.date_range("2001-01-01", periods=n, freq="MS").strftime("%Y-%m-%d"),
            "sales": 100 + t + 10 * np.sin(2 * np.pi * t / 12),
        }
    )
    for col, fn in changes.items():
        df[col] = fn(df[col])
    df.to_csv(path, index=False)
    return path


def test_demo_writes_everything_and_predict_reads_it(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    code, stdout, stderr = run(["forecast", "--out", str(out), *TINY], capsys)
    assert code == 0, stderr
    for name in ("forecast.csv", "future.csv", "metrics.csv", "forecast.png", "training.png"):
        assert (out / name).is_file(), name
    assert (out / "model" / "config.json").is_file()
    for label in ("lstmkit", "naive", "seasonal_naive", "MAPE", "MASE"):
        assert label in stdout
    fc = pd.read_csv(out / "forecast.csv")
    assert len(fc) == 12 and fc["month"].iloc[0].startswith("1960-01")
    assert fc["actual"].iloc[-1] == 432.0  # the real December 1960 figure
    assert {"forecast", "q10", "q90", "naive", "seasonal_naive"} <= set(fc.columns)
    assert pd.read_csv(out / "future.csv")["month"].iloc[0].startswith("1961-01")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    code, stdout, stderr = run(
        ["predict", "--model", str(out / "model"), "--output", str(tmp_path / "p.csv")], capsys
    )
    assert code == 0, stderr
    assert "1961-01-01" in stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), pd.read_csv(out / "future.csv"))


def test_csv_with_options_and_predict_with_new_data(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "shop.csv")
    out = tmp_path / "run"
    args = ["forecast", str(data), "--target", "sales", "--time-col", "date", "--horizon", "6",
            "--window", "12", "--quantiles", "none", "--backtest", "2", "--out", str(out),
            *TINY]  # fmt: skip
    code, stdout, stderr = run(args, capsys)
    assert code == 0, stderr
    assert len(pd.read_csv(out / "forecast.csv")) == 6
    folds = pd.read_csv(out / "backtest.csv")
    # the network and the four default baselines (naive, snaive, nlinear, dlinear) per fold
    assert folds["fold"].tolist() == [1] * 5 + [2] * 5 and "mean over 2 folds" in stdout
    newer = _csv(tmp_path / "newer.csv", n=30)
    code, stdout, stderr = run(["predict", "--model", str(out / "model"), "--data", str(newer)],
                               capsys)  # fmt: skip
    assert code == 0, stderr
    assert "2003-07-01" in stdout  # 30 months from 2001-01 -> next is 2003-07


def test_ensemble_option_trains_that_many_networks_and_says_so(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "shop.csv")
    base = ["forecast", str(data), "--target", "sales", "--time-col", "date", "--horizon", "6",
            "--window", "12", *TINY]  # fmt: skip
    code, stdout, stderr = run([*base, "--out", str(tmp_path / "a")], capsys)  # auto: 3
    assert code == 0, stderr
    assert "trained 3 networks (seeds 0-2) for 3/3/3 epochs" in " ".join(stdout.split())
    code, stdout, stderr = run([*base, "--ensemble", "1", "--out", str(tmp_path / "b")], capsys)
    assert code == 0, stderr
    assert "trained 3 epochs in" in stdout and "networks" not in stdout
    for bad, said in (("two", "--ensemble must be auto or a whole number"),
                      ("0", "ensemble must be an integer >= 1 or one of auto, got 0")):  # fmt: skip
        code, stdout, stderr = run([*base, "--ensemble", bad, "--out", str(tmp_path / bad)],
                                   capsys)  # fmt: skip
        assert code == 2 and stderr.startswith("error: ") and said in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / bad).exists()


def test_longer_holdout_says_what_was_scored(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "shop.csv", n=60)
    args = ["forecast", str(data), "--target", "sales", "--horizon", "6", "--window", "12",
            "--holdout", "10", "--out", str(tmp_path / "run"), *TINY]  # fmt: skip
    code, stdout, stderr = run(args, capsys)
    assert code == 0, stderr
    assert "last 10 steps held out, scored on the final 6" in " ".join(stdout.split())
    assert len(pd.read_csv(tmp_path / "run" / "forecast.csv")) == 6


def _bad_cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    def nonnum(s):
        s = s.astype(object)
        s[5] = "ten"
        return s

    def nan(s):
        s = s.copy()
        s[9] = np.nan
        return s

    irregular = tmp / "irregular.csv"
    pd.read_csv(_csv(tmp / "tmp.csv")).drop(index=[20]).to_csv(irregular, index=False)
    notmodel = tmp / "notmodel"
    notmodel.mkdir()
    return {
        "missing file": (["forecast", str(tmp / "missing.csv")], "does not exist"),
        "missing column": (["forecast", str(_csv(tmp / "a.csv")), "--target", "revenue"],
                           "target column 'revenue' not found"),
        "non-numeric": (["forecast", str(_csv(tmp / "b.csv", sales=nonnum)), "--target", "sales"],
                        "must be numeric but has 'ten' at row 6 (line 7 of b.csv)"),
        "NaN": (["forecast", str(_csv(tmp / "c.csv", sales=nan)), "--target", "sales"],
                "missing value (NaN) at row 10 (line 11 of c.csv), time 2001-10-01"),
        "too short": (["forecast", str(_csv(tmp / "d.csv", n=20)), "--target", "sales",
                       "--window", "12"], "fewer than window (12) + horizon (12) = 24"),
        "irregular": (["forecast", str(irregular), "--target", "sales"],
                      "timestamps are irregular"),
        "unreadable model": (["predict", "--model", str(notmodel)], "no config.json"),
        "missing model": (["predict", "--model", str(tmp / "nomodel")], "does not exist"),
        "bad quantiles": (["forecast", "--quantiles", "a,b"], "--quantiles must be"),
        "huge unscaled": (["forecast", str(_csv(tmp / "e.csv", sales=lambda s: s * 1e28)),
                           "--target", "sales", "--scaler", "none", "--no-instance-norm"],
                          "training diverged"),
        "refit without validation": (["forecast", "--refit", "--val-size", "0"],
                                     "refit calibrates on the validation stretch"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["missing file", "missing column", "non-numeric", "NaN", "too short", "irregular",
     "unreadable model", "missing model", "bad quantiles", "huge unscaled",
     "refit without validation"],
)  # fmt: skip
def test_bad_input_one_line_exit_2_nothing_written(tmp_path: Path, capsys, case: str) -> None:
    argv, message = _bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    if argv[0] == "forecast":
        argv = [*argv, "--out", str(out), *TINY]
    code, _, stderr = run(argv, capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert message in lines[0]
    assert not out.exists()


def test_the_table_read_beside_the_imports_reports_after_the_settings(tmp_path, capsys):
    """The command reads the data in another thread while torch and Lightning load; a bad
    setting is still the one error reported when the data is bad too (as when the data was
    read after the settings' checks), and a bad file alone is its own one line."""
    missing = str(tmp_path / "missing.csv")
    out = tmp_path / "out"
    code, _, stderr = run(["forecast", missing, "--baselines", "bogus", "--out", str(out)], capsys)
    assert code == 2 and stderr.count("\n") == 1 and "bogus" in stderr and "missing" not in stderr
    code, _, stderr = run(["forecast", missing, "--out", str(out), *TINY], capsys)
    assert code == 2 and stderr.strip() == (
        f"error: data file {missing} does not exist; pass a CSV or Parquet file"
    )
    assert not out.exists()


def test_console_script_error_path(tmp_path: Path) -> None:
    """The real entry point in a fresh process: one line on stderr, exit status 2."""
    proc = subprocess.run(
        [sys.executable, "-c", "from lstmkit.cli import main; main()", "forecast",
         str(tmp_path / "missing.csv")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: data file {tmp_path / 'missing.csv'} does not exist; pass a CSV or Parquet file"
    ]


#: the console script (`lstmkit.cli.console`) run with the given arguments, beside an exit
#: handler and an object whose teardown prints; a first argument ``thread`` also leaves a
#: non-daemon thread running for a second, which then prints
CONSOLE = """
import atexit, os, sys, threading, time
atexit.register(lambda: print("exit handler ran"))
class Late:
    def __del__(self, write=os.write):  # at the teardown, without sys.stdout
        write(1, b"torn down\\n")
late = Late()
from lstmkit.cli import console
def slow():
    time.sleep(1.0)
    os.write(1, b"thread done\\n")
if sys.argv[1] == "thread":
    sys.argv.pop(1)
    threading.Thread(target=slow).start()
sys.argv = ["lstmkit", *sys.argv[1:]]
console()
"""


@pytest.mark.parametrize("thread", [False, True])
def test_the_console_script_exits_after_its_exit_handlers_without_the_teardown(
    tmp_path: Path, thread: bool
) -> None:
    """`console` (the ``lstmkit`` script) keeps the command's exit status and output and runs
    the exit handlers, then ends the process without the interpreter's teardown of every
    object (about 1.2 s once torch is loaded), unless another thread still runs."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        extra = ["thread"] if thread else []
        return subprocess.run(
            [sys.executable, "-c", CONSOLE, *extra, *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    shown = run("forecast", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--horizon" in shown.stdout and "exit handler ran" in shown.stdout
    # the ordinary exit (with its teardown) waits for a running thread
    assert ("torn down" in shown.stdout) is thread and ("thread done" in shown.stdout) is thread
    if thread:
        return
    missing = run("forecast", str(tmp_path / "missing.csv"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: data file {tmp_path / 'missing.csv'} does not exist; pass a CSV or Parquet file"
    ]
    assert "exit handler ran" in missing.stdout
    usage = run("forecast", "--bogus")
    assert usage.returncode == 2 and usage.stderr.startswith("error: No such option: --bogus")


#: in a fresh process: the page faults of allocating, filling and freeing a 160 MB array
#: three times after it has been done once, with `keep_freed_memory` first when the first
#: argument is "keep", and numpy's huge-page advice (on before: this returns the old value)
MEMORY = """
import resource, sys
import lstmkit.cli
import numpy as np
from numpy._core.multiarray import _set_madvise_hugepage
advice = _set_madvise_hugepage(True)
_set_madvise_hugepage(advice)
took = lstmkit.cli.keep_freed_memory() if sys.argv[1] == "keep" else None
np.ones(20_000_000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    a = np.ones(20_000_000)
    del a
print(took, advice, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_the_console_keeps_freed_memory_and_drops_numpys_huge_page_advice() -> None:
    """`keep_freed_memory` (run by the console script) serves a large array again from
    memory freed before: three more 160 MB arrays fault in almost no page, where glibc's
    default maps each one afresh (39,000 pages of 4 KiB each). Importing the command line
    turns numpy's huge-page advice off, unless the user set it."""

    def run(*args: str, **env: str) -> list[str]:
        unset = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY, *args], capture_output=True, text=True, timeout=120,
            env={**unset, **env},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    took, advice, faults = run("keep")
    assert (took, advice) == ("True", "False") and int(faults) < 1000
    took, _, faults = run("default")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    always = thp.exists() and "[always]" in thp.read_text()  # 2 MiB pages: few faults
    assert took == "None" and (always or int(faults) > 3 * 30_000)
    assert run("keep", NUMPY_MADVISE_HUGEPAGE="1")[1] == "True"


def test_keep_freed_memory_leaves_other_platforms_alone(monkeypatch) -> None:
    """Off Linux (no glibc mallopt to call) the settings are not tried: False, nothing
    changes and nothing is raised."""
    import lstmkit.cli

    monkeypatch.setattr(sys, "platform", "darwin")
    assert lstmkit.cli.keep_freed_memory() is False


def test_future_covariates_from_the_command_line(tmp_path: Path, capsys) -> None:
    n = 48
    t = np.arange(n + 6)
    promo = (np.arange(n + 6) % 5 == 0).astype(float)
    full = pd.DataFrame(
        {
            "date": pd.date_range("2001-01-01", periods=n + 6, freq="MS").strftime("%Y-%m-%d"),
            "sales": 100 + t + 30 * promo,
            "promo": promo,
        }
    )
    full.iloc[:n].to_csv(tmp_path / "hist.csv", index=False)
    full.iloc[n:][["date", "promo"]].to_csv(tmp_path / "plan.csv", index=False)
    out = tmp_path / "run"
    args = ["forecast", str(tmp_path / "hist.csv"), "--target", "sales", "--horizon", "6",
            "--window", "12", "--future-covariates", "promo", "--future",
            str(tmp_path / "plan.csv"), "--out", str(out), *TINY]  # fmt: skip
    code, _, stderr = run(args, capsys)
    assert code == 0, stderr
    ahead = pd.read_csv(out / "future.csv")
    assert ahead["date"].tolist() == full["date"].iloc[n:].tolist()
    code, stdout, stderr = run(
        ["predict", "--model", str(out / "model"), "--future", str(tmp_path / "plan.csv")], capsys
    )
    assert code == 0, stderr
    assert "2005-01-01" in stdout
    code, _, stderr = run(["predict", "--model", str(out / "model")], capsys)
    assert code == 2
    assert stderr.strip().splitlines() == [
        "error: this model uses known future values of ['promo']; pass them for the forecast "
        "steps (future=table, or --future FILE)"
    ]


def test_checkpoint_dir_resumes_an_interrupted_fit(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "shop.csv")
    base = ["forecast", str(data), "--target", "sales", "--horizon", "6", "--window", "12",
            "--hidden-size", "8", "--no-progress",
            "--checkpoint-dir", str(tmp_path / "ckpt")]  # fmt: skip
    code, _, stderr = run([*base, "--max-epochs", "3", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, stderr
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    # backtest refits must neither resume from nor clobber the run's checkpoint
    code, _, stderr = run([*base, "--max-epochs", "5", "--backtest", "2", "--out",
                           str(tmp_path / "b")], capsys)  # fmt: skip
    assert code == 0, stderr
    saved = json.loads((tmp_path / "b" / "model" / "config.json").read_text())
    assert saved["config"]["forecaster"]["train"]["checkpoint_dir"] is None
    history = json.loads((tmp_path / "b" / "model" / "history.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3, 4]  # epochs 0-2 came from the ckpt
    code, _, stderr = run([*base[:-1], str(tmp_path / "d" / "ckpt"), "--out",
                           str(tmp_path / "d")], capsys)  # fmt: skip
    assert code == 2 and "is inside --out" in stderr
    # the same checkpoint folder with other data: refused, not silently reused
    other = _csv(tmp_path / "other.csv", sales=lambda s: s * 3)
    argv = [*base, "--max-epochs", "5", "--out", str(tmp_path / "c")]
    argv[1] = str(other)
    code, _, stderr = run(argv, capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert "belongs to a run with other data or settings" in stderr
    assert not (tmp_path / "c").exists()


def test_killed_run_resumes_and_ends_with_the_uninterrupted_forecast(
    tmp_path: Path, kill_at_first_checkpoint
) -> None:
    """SIGKILL mid-training, rerun the same command: it resumes from the checkpoint and
    ends with the same forecast as a run that was never interrupted (same seed)."""

    data = _csv(tmp_path / "shop.csv", n=60)
    ckpt = tmp_path / "ckpt"

    def argv(out: Path, checkpoint: Path) -> list[str]:
        return [sys.executable, "-c", "from lstmkit.cli import main; main()", "forecast",
                str(data), "--target", "sales", "--horizon", "6", "--window", "12",
                "--hidden-size", "16", "--max-epochs", "40", "--no-progress",
                "--checkpoint-dir", str(checkpoint), "--out", str(out)]  # fmt: skip

    kill_at_first_checkpoint(argv(tmp_path / "out", ckpt), ckpt)
    assert not (tmp_path / "out").exists()  # nothing written by the killed run

    resumed = subprocess.run(
        argv(tmp_path / "out", ckpt), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint" in resumed.stdout
    full = subprocess.run(
        argv(tmp_path / "ref", tmp_path / "ckpt_ref"), capture_output=True, text=True, timeout=300
    )
    assert full.returncode == 0, full.stderr
    assert "resumed" not in full.stdout

    def history(out: Path) -> list[float]:
        rows = json.loads((out / "model" / "history.json").read_text())["history"]
        return [row["train_loss"] for row in rows]

    assert history(tmp_path / "out") == pytest.approx(history(tmp_path / "ref"), rel=1e-6)
    got = pd.read_csv(tmp_path / "out" / "forecast.csv")
    want = pd.read_csv(tmp_path / "ref" / "forecast.csv")
    for col in ("forecast", "q10", "q90"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-5)


@pytest.mark.parametrize(("sig", "status", "said"), [("SIGINT", 130, "error: interrupted\n"),
                                                      ("SIGTERM", 143, "")])  # fmt: skip
def test_a_run_stopped_mid_training_is_not_a_success(
    tmp_path: Path, sig: str, status: int, said: str
) -> None:
    """Ctrl-C or SIGTERM during training: Lightning ended the run with status 1 (Ctrl-C,
    without the CLI's line) or 0 (SIGTERM, as if it had finished); nothing is written."""
    import signal
    import time

    data, ckpt, out = _csv(tmp_path / "shop.csv", n=60), tmp_path / "ckpt", tmp_path / "out"
    argv = [sys.executable, "-c", "from lstmkit.cli import main; main()", "forecast",
            str(data), "--target", "sales", "--horizon", "6", "--window", "12",
            "--hidden-size", "8", "--max-epochs", "10000", "--keep-weights", "last",
            "--no-progress", "--checkpoint-dir", str(ckpt), "--out", str(out)]  # fmt: skip
    # a shell's background job (CI's, a nohup run) ignores SIGINT, and Python then installs
    # no Ctrl-C handler: the child gets the default back, as a terminal would give it
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (ckpt / "last.ckpt").exists() and proc.poll() is None:  # training is under way
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stderr) == (status, said)
    assert not out.exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_output_folder_is_replaced_as_a_unit(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "shop.csv")
    out = tmp_path / "run"
    base = ["forecast", str(data), "--target", "sales", "--horizon", "6", "--window", "12",
            "--out", str(out), *TINY]  # fmt: skip
    old = os.umask(0o022)
    try:
        code, _, stderr = run(base, capsys)
    finally:
        os.umask(old)
    assert code == 0, stderr
    assert stat.S_IMODE((out / "forecast.csv").stat().st_mode) == 0o644  # not mkstemp's 0600
    assert stat.S_IMODE((out / "model").stat().st_mode) == 0o755
    before = _snapshot(out)
    # a run that fails after training (too many backtest folds) leaves the folder as it was
    code, _, stderr = run([*base, "--backtest", "9"], capsys)
    assert code == 2 and "use fewer folds" in stderr and len(stderr.strip().splitlines()) == 1
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # a second run with --holdout 0 leaves no forecast.csv / metrics.csv of the first
    code, _, stderr = run([*base, "--holdout", "0"], capsys)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "forecast.png",
        "future.csv",
        "model",
        "training.png",
    ]


def test_out_that_cannot_be_written_is_refused_before_training(
    tmp_path: Path, unwritable_dir: Path, capsys
) -> None:
    (tmp_path / "file").write_text("")
    code, stdout, stderr = run(["forecast", "--out", str(tmp_path / "file" / "out"), *TINY], capsys)
    assert code == 2 and stderr.startswith("error: cannot write") and "trained" not in stdout
    code, stdout, stderr = run(["forecast", "--out", str(unwritable_dir / "out"), *TINY], capsys)
    assert code == 2 and stderr.count("\n") == 1 and "trained" not in stdout
    assert stderr.startswith(f"error: cannot write {unwritable_dir / 'out'}")


def test_out_with_other_files_or_another_model_kind_is_refused(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, stdout, stderr = run(["forecast", "--out", str(mine), *TINY], capsys)
    assert code == 2 and "holds files lstmkit forecast did not write (notes.txt)" in stderr
    assert (mine / "notes.txt").read_text() == "keep me" and "trained" not in stdout
    text_model = tmp_path / "texts"
    save_model_dir(text_model / "model", kind="text_classifier", config={}, state_dict={})
    code, _, stderr = run(["forecast", "--out", str(text_model), *TINY], capsys)
    assert code == 2 and "holds a 'text_classifier' model, which would be lost" in stderr


def test_classify_train_refuses_a_forecaster_folder_before_training(tmp_path: Path, capsys) -> None:
    model = tmp_path / "fc" / "model"
    save_model_dir(model, kind="forecaster", config={"v": 1}, state_dict={})
    texts = tmp_path / "t.csv"
    pd.DataFrame({"text": ["good film", "bad film"] * 10, "label": ["pos", "neg"] * 10}).to_csv(
        texts, index=False
    )
    code, stdout, stderr = run(
        ["classify", "train", str(texts), "--out", str(model), "--max-epochs", "1"], capsys
    )
    assert code == 2 and stderr.count("\n") == 1
    assert "holds a 'forecaster' model, which would be lost" in stderr
    assert "training on" not in stdout
    assert json.loads((model / "config.json").read_text())["config"] == {"v": 1}


def test_predict_output_naming_a_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert run(["forecast", "--out", str(out), *TINY], capsys)[0] == 0
    code, _, stderr = run(["predict", "-m", str(out / "model"), "--output", str(tmp_path)], capsys)
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"error: {tmp_path} is a folder; give a file name to write"
    ]


def test_constant_series_writes_everything_with_undefined_mase(tmp_path: Path, capsys) -> None:
    data = _csv(tmp_path / "flat.csv", sales=lambda s: s * 0 + 7.0)
    out = tmp_path / "flat"
    code, stdout, stderr = run(["forecast", str(data), "--target", "sales", "--horizon", "6",
                                "--window", "12", "--out", str(out), *TINY], capsys)  # fmt: skip
    assert code == 0, stderr
    assert "MASE n/a: the training history never changes" in stdout
    metrics = pd.read_csv(out / "metrics.csv", index_col="model")
    assert metrics["MASE"].isna().all() and (metrics.loc["naive", ["MAE", "RMSE"]] == 0).all()
    assert np.isfinite(pd.read_csv(out / "forecast.csv")["forecast"]).all()
    assert (out / "forecast.png").is_file() and (out / "model" / "config.json").is_file()


def test_time_zone_offsets_are_kept_through_forecast_and_predict(tmp_path: Path, capsys) -> None:
    # from September: the offsets (+02:00, then +01:00 from October) identify the zone
    times = pd.date_range(end="2021-03-24", periods=200, freq="D", tz="Europe/Berlin")
    t = np.arange(200)
    data = tmp_path / "berlin.csv"
    pd.DataFrame({"date": times, "load": 50 + 5 * np.sin(2 * np.pi * t / 7)}).to_csv(
        data, index=False
    )
    out = tmp_path / "tz"
    code, _, stderr = run(["forecast", str(data), "--target", "load", "--horizon", "7",
                           "--window", "14", "--out", str(out), *TINY], capsys)  # fmt: skip
    assert code == 0, stderr
    future = pd.read_csv(out / "future.csv")["date"].tolist()
    assert future == [f"2021-03-{d} 00:00:00+01:00" for d in (25, 26, 27, 28)] + [
        f"2021-03-{d} 00:00:00+02:00" for d in (29, 30, 31)
    ]  # local midnights on both sides of the change to summer time
    held = pd.read_csv(out / "forecast.csv")["date"]
    assert held.iloc[-1] == "2021-03-24 00:00:00+01:00"
    code, stdout, stderr = run(["predict", "-m", str(out / "model"), "-o", str(tmp_path / "p.csv")],
                               capsys)  # fmt: skip
    assert code == 0, stderr
    assert pd.read_csv(tmp_path / "p.csv")["date"].tolist() == future
    assert "2021-03-29 00:00:00+02:00" in stdout


@pytest.fixture(scope="module")
def previous_run(tmp_path_factory) -> Path:
    """A complete forecast output folder, copied by each test that must leave it intact."""
    import shutil

    root = tmp_path_factory.mktemp("prev")
    out = root / "out"
    old = sys.argv
    sys.argv = ["lstmkit", "forecast", "--out", str(out), *TINY]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        sys.argv = old
    shutil.copy(out / "forecast.csv", root / "check.csv")
    return out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hidden-size", "10000000"], "parameters, about"),
        (["--lr", "-1"], "lr must be a number > 0, got -1.0"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--window", "1"], "window must be an integer >= 2 or None, got 1"),
        (["--precision", "8"], "--precision': Value error, '8' is not one of '32', '32-true'"),
        (["--logger", "wandb"], "'wandb' is not one of 'csv', 'tensorboard'"),
        (["--recurrent-dropout", "1.5"], "recurrent_dropout must be a number in [0, 1), got 1.5"),
        (["--zoneout", "-0.2"], "zoneout must be a number in [0, 1), got -0.2"),
        (["--lr", "1e6"], "training diverged: the training loss stayed over 100 times"),
        (["--future", "plan.csv"], "a future table was given but no future covariates"),
    ],
)
def test_hostile_settings_one_line_previous_output_intact(
    previous_run: Path, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    import shutil

    out = Path(shutil.copytree(previous_run, tmp_path / "out"))
    before = _snapshot(out)
    code, stdout, stderr = run(["forecast", "--out", str(out), *TINY, *extra], capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert "trained" not in stdout
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_damaged_context_in_predict_is_one_line(previous_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    from test_forecasting_hostile import old_format

    model = Path(shutil.copytree(previous_run / "model", tmp_path / "model"))
    (model / "context.safetensors").write_bytes(b"\x08\x00\x00\x00garbage")
    code, _, stderr = run(["predict", "-m", str(model)], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert "is damaged: context.safetensors changed since the model was saved" in stderr
    # a folder saved before the context arrays (one JSON object per series), damaged
    model = Path(shutil.copytree(previous_run / "model", tmp_path / "old"))
    ctx = old_format(model)
    ctx["0"]["times"][0] = "31/31/1999"
    (model / "context.json").write_text(json.dumps(ctx))
    code, _, stderr = run(["predict", "-m", str(model)], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert "context.json is damaged" in stderr


@pytest.mark.parametrize(
    "precision", ["32", pytest.param("bf16-mixed", marks=pytest.mark.native_bf16)]
)
def test_precision_and_csv_logger(tmp_path: Path, capsys, precision: str) -> None:
    out = tmp_path / "run"
    code, stdout, stderr = run(["forecast", "--out", str(out), "--precision", precision,
                                "--logger", "csv", *TINY], capsys)  # fmt: skip
    assert code == 0, stderr
    fc = pd.read_csv(out / "forecast.csv")
    assert np.isfinite(fc[["forecast", "q10", "q90"]].to_numpy()).all()
    assert (
        json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]["train"][
            "precision"
        ]
        == precision
    )
    assert list((out / "logs").glob("lstmkit/version_*/metrics.csv"))
    assert "logs/" in stdout


def test_bf16_without_native_bf16_is_one_line_and_nothing_written(
    tmp_path: Path, capsys, cpu_fallback
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "forecast.csv").write_text("earlier output\n")
    code, _, stderr = run(["forecast", "--out", str(out), "--precision", "bf16-mixed",
                           *TINY], capsys)  # fmt: skip
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: precision bf16-mixed needs"), stderr
    assert "--precision 32" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["forecast.csv"]
    assert (out / "forecast.csv").read_text() == "earlier output\n"


def test_an_unexpected_error_keeps_its_type_and_message(monkeypatch, capsys) -> None:
    """The CLI turns only lstmkit's and click's errors into one line; a bug elsewhere is
    the real exception, not one raised by the handler."""
    import lstmkit.tasks.forecasting as forecasting

    def boom(*args, **kwargs):
        raise ZeroDivisionError("the real crash")

    monkeypatch.setattr(forecasting, "Forecaster", boom)
    monkeypatch.setattr(sys, "argv", ["lstmkit", "forecast", *TINY])
    with pytest.raises(ZeroDivisionError, match="the real crash"):
        main()


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys) -> None:
    import lstmkit.tasks.forecasting as forecasting

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(forecasting, "Forecaster", interrupted)
    code, _, stderr = run(["forecast", *TINY], capsys)
    assert code == 130 and stderr.strip() == "error: interrupted"


def test_variant_options_reach_the_saved_model(tmp_path: Path, capsys) -> None:
    out = tmp_path / "variants"
    code, _, stderr = run(["forecast", "--out", str(out), "--layer-norm", "--recurrent-dropout",
                           "0.2", "--zoneout", "0.1", *TINY], capsys)  # fmt: skip
    assert code == 0, stderr
    saved = json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]
    assert (saved["layer_norm"], saved["recurrent_dropout"], saved["zoneout"]) == (True, 0.2, 0.1)
    weights = (out / "model" / "model.safetensors").read_bytes()
    assert b"ln_weight_ih_l0" in weights and b"ln_weight_c_l0" in weights
    code, stdout, stderr = run(["predict", "-m", str(out / "model")], capsys)
    assert code == 0, stderr
    assert "forecast" in stdout


def test_keep_weights_last_trains_every_epoch_and_is_saved(tmp_path: Path, capsys) -> None:
    from lstmkit import Forecaster

    out = tmp_path / "last"
    argv = ["forecast", _csv(tmp_path / "s.csv").as_posix(), "--out", str(out), "--max-epochs",
            "4", "--hidden-size", "8", "--no-progress", "--keep-weights", "last"]  # fmt: skip
    code, _, stderr = run(argv, capsys)
    assert code == 0, stderr
    saved = json.loads((out / "model" / "config.json").read_text())["config"]["forecaster"]
    assert saved["train"]["keep_weights"] == "last"
    history = json.loads((out / "model" / "history.json").read_text())
    assert history["epochs_run"] == 4 and history["best_epoch"] == 3
    assert history["best_val_loss"] == history["history"][-1]["val_loss"]
    assert Forecaster.load(out / "model").config.train.keep_weights == "last"


@pytest.mark.parametrize(
    "argv",
    [
        ["forecast", "--lr", "abc"],
        ["forecast", "--nosuch"],
        ["forecast", "--horizon", "twelve"],
        ["forecast", "--keep-weights", "final"],
        ["classify", "predict"],
    ],
)
def test_usage_errors_are_one_line(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "--help" in err


# ------------------------------------------------------------------ issue 19
def test_checkpoint_dir_that_cannot_be_written_is_refused_before_training(
    tmp_path: Path, unwritable_dir: Path, capsys
) -> None:
    """It used to fail with a FileNotFoundError / PermissionError once training had run."""
    out = tmp_path / "out"
    for ckpt, message in [
        (unwritable_dir / "ckpt", f"error: --checkpoint-dir: cannot write in {unwritable_dir}"),
        (tmp_path / "file" / "ckpt", f"error: --checkpoint-dir: {tmp_path / 'file'} is a file"),
        (tmp_path / "file", f"error: --checkpoint-dir {tmp_path / 'file'} is a file"),
    ]:
        (tmp_path / "file").write_text("")
        code, stdout, stderr = run(["forecast", "--out", str(out), "--checkpoint-dir", str(ckpt),
                                    *TINY], capsys)  # fmt: skip
        assert code == 2 and stderr.count("\n") == 1 and stderr.startswith(message), stderr
        assert "trained" not in stdout and not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no staging folder left behind


@pytest.mark.parametrize("extra", [[], ["--layer-norm"]])
def test_precision_64_trains_and_predicts(tmp_path: Path, capsys, extra: list[str]) -> None:
    """--precision 64 used to stop at the first forecast: get_mkldnn_dtype: unsupported
    data type (with --layer-norm: a Float/Double mismatch in F.linear)."""
    out = tmp_path / "run"
    code, _, stderr = run(["forecast", "--out", str(out), "--precision", "64", *extra,
                           *TINY], capsys)  # fmt: skip
    assert code == 0, stderr
    for name in ("forecast.csv", "future.csv"):
        table = pd.read_csv(out / name)
        assert len(table) == 12 and np.isfinite(table[["forecast", "q10", "q90"]]).all().all()
    code, _, stderr = run(["predict", "-m", str(out / "model"), "-o", str(tmp_path / "p.csv")],
                          capsys)  # fmt: skip
    assert code == 0, stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), pd.read_csv(out / "future.csv"))


def test_predict_refuses_history_on_another_time_axis(previous_run: Path, tmp_path, capsys):
    """The demo model is monthly; a daily or integer-stamped history used to be forecast."""
    for name, times, got in [
        ("daily.csv", pd.date_range("1960-01-01", periods=40, freq="D"), "daily timestamps"),
        ("steps.csv", np.arange(40), "integer times"),
    ]:
        pd.DataFrame({"month": times, "passengers": 400.0 + np.arange(40)}).to_csv(
            tmp_path / name, index=False
        )
        code, _, stderr = run(["predict", "-m", str(previous_run / "model"), "--data",
                               str(tmp_path / name)], capsys)  # fmt: skip
        assert code == 2 and stderr.count("\n") == 1, stderr
        assert stderr.startswith("error: the model was trained on monthly timestamps (freq MS); "
                                 f"the history has {got}")  # fmt: skip
