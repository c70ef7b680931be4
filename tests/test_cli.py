"""The fused-sched command line: each subcommand on tiny inputs, the digits run with its defaults,
the range test's suggestion against training, and bad input (status 2, one line, no traceback).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fused_sched import OneCycle
from fused_sched.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def blobs(rows_per_class=20, features=4, seed=0):
    """Three well separated Gaussian blobs, labels 1, 5, 9 (renumbered by the loader)."""
    rng = np.random.default_rng(seed)
    centres = 4.0 * np.eye(3, features)
    x = np.concatenate([c + rng.standard_normal((rows_per_class, features)) for c in centres])
    y = np.repeat([1, 5, 9], rows_per_class)
    return x, y


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The same small data set as .csv (label column "kind", in the middle) and as .npz."""
    folder = tmp_path_factory.mktemp("data")
    x, y = blobs()
    header = "f0,f1,kind,f2,f3"
    rows = [
        ",".join(map(str, [*r[:2], label, *r[2:]]))
        for r, label in zip(x.tolist(), y.tolist(), strict=True)
    ]
    (folder / "tiny.csv").write_text("\n".join([header, *rows]) + "\n")
    np.savez(folder / "tiny.npz", X=x, y=y)
    return folder


# --- train ---------------------------------------------------------------------------------------


def test_train_digits_with_defaults(tmp_path, capsys):
    status, out, err = run(capsys, "train", "--out", tmp_path)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95
    assert metrics["steps"] == 15 * 22  # 1347 training rows in batches of 64, 15 epochs
    assert metrics["backend"] == "torch" and metrics["max_lr_from"] == "lr-find (steepest)"
    assert metrics["schedule"].startswith("OneCycle(max_lr=")
    assert metrics["seconds"] > 0 and metrics["final_loss"] < 0.1
    for name in ("lr.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert "test accuracy" in out and err == ""


def test_range_test_suggests_an_lr_where_training_works(tmp_path, capsys):
    """Brief training at the suggestion works; at 100 times it, the loss blows up."""
    status, out, err = run(capsys, "lr-find", "--out", tmp_path)
    assert status == 0, err
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert found["method"] == "steepest" and found["lrs"][0] == 1e-7
    assert len(found["lrs"]) == len(found["losses"]) == len(found["raw_losses"])
    assert (tmp_path / "lr_find.png").read_bytes()[:8] == PNG
    suggested = found["suggested_lr"]
    assert f"suggested lr: {suggested:.3g}" in out

    results = {}
    for scale in (1, 100):
        out_dir = tmp_path / f"x{scale}"
        lr = suggested * scale
        argv = ["train", "--schedule", "constant", "--max-lr", lr, "--epochs", 2, "--out", out_dir]
        assert run(capsys, *argv)[0] == 0
        results[scale] = json.loads((out_dir / "metrics.json").read_text())
    good, bad = results[1], results[100]
    assert good["schedule"] == f"Constant(lr={suggested!r})"
    assert good["test_accuracy"] >= 0.9 and good["test_loss"] < 0.5
    assert bad["test_loss"] > 20 * good["test_loss"]
    assert bad["final_loss"] > 20 * good["final_loss"]


def test_train_csv_with_label_column(tiny, tmp_path, capsys):
    argv = ["train", "--data", tiny / "tiny.csv", "--label-column", "kind", "--max-lr", 0.01,
            "--epochs", 3, "--batch-size", 16, "--seed", 3, "--out", tmp_path]  # fmt: skip
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["classes"] == 3 and metrics["features"] == 4
    assert metrics["train_rows"] == 45 and metrics["test_rows"] == 15  # 5 of each 20 held out
    assert metrics["steps"] == 3 * 3  # 45 rows in batches of 16
    assert metrics["max_lr"] == 0.01 and metrics["max_lr_from"] == "--max-lr"
    assert metrics["schedule"] == repr(OneCycle(0.01, total_steps=9, warmup_steps=3))


def test_train_npz_with_schedule_parameters(tiny, tmp_path, capsys):
    argv = ["train", "--data", tiny / "tiny.npz", "--schedule", "WarmupCosine",
            "--param", "min_lr=1e-5", "--param", "warmup-steps=2", "--epochs", 4,
            "--batch-size", 15, "--out", tmp_path]  # fmt: skip
    status, _, err = run(capsys, *argv)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["max_lr_from"] == "lr-find (steepest)" and metrics["max_lr"] > 0
    max_lr = metrics["max_lr"]
    assert metrics["schedule"] == (
        f"WarmupCosine(max_lr={max_lr!r}, warmup_steps=2, total_steps=12, min_lr=1e-05, "
        "start_lr=0.0)"
    )
    assert metrics["test_accuracy"] > 0.9  # the blobs are far apart


def test_lr_find_npz(tiny, tmp_path, capsys):
    argv = ["lr-find", "--data", tiny / "tiny.npz", "--start-lr", 1e-5, "--end-lr", 1,
            "--num-steps", 30, "--method", "valley", "--batch-size", 8,
            "--out", tmp_path]  # fmt: skip
    status, out, err = run(capsys, *argv)
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert found["lrs"][0] == 1e-5 and found["method"] == "valley"
    assert found["lrs"][-1] == 1.0 or found["diverged"]
    assert (status, found["suggested_lr"] is None) in ((0, False), (1, True)), err


# --- plot ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        ["--max_lr", "0.1", "--total_steps", "100", "--warmup_steps", "30"],
        ["--max-lr=0.1", "--total-steps=100", "--warmup-steps=30"],
        ["max_lr=0.1", "total_steps=100", "warmup_steps=30"],
    ],
)
def test_plot_one_cycle(params, tmp_path, capsys):
    status, out, err = run(capsys, "plot", "one_cycle", *params, "--out", tmp_path / "oc.png")
    assert status == 0, err
    assert (tmp_path / "oc.png").read_bytes()[:8] == PNG
    schedule = OneCycle(0.1, total_steps=100, warmup_steps=30)
    lines = out.splitlines()
    assert lines[0] == repr(schedule)
    # Drawn to 110 updates by default (10% past the last phase's end).
    assert lines[1] == (
        f"start {schedule.lr_at(1):.6g} (update 1), peak 0.1 (update 30), "
        f"end {schedule.lr_at(110):.6g} (update 110)"
    )


def test_plot_out_without_suffix_gets_png(tmp_path, capsys):
    """matplotlib would write "lr.png" for "lr" anyway; the path printed is the one written."""
    (tmp_path / "lr").write_text("an existing file, left alone")
    status, out, err = run(capsys, "plot", *ONE_CYCLE, "max_lr=0.1", "--out", tmp_path / "lr")
    assert status == 0, err
    assert (tmp_path / "lr.png").read_bytes()[:8] == PNG
    assert (tmp_path / "lr").read_text() == "an existing file, left alone"
    assert out.splitlines()[-1] == f"wrote {tmp_path / 'lr.png'}"


def test_plot_compat_schedule_until(tmp_path, capsys):
    out_file = tmp_path / "deep" / "torch.png"
    argv = ["plot", "torch_one_cycle", "max_lr=0.01", "total_steps=50", "--until", 60,
            "--out", out_file]  # fmt: skip
    status, out, err = run(capsys, *argv)
    assert status == 0, err
    assert out_file.read_bytes()[:8] == PNG
    assert "(update 60)" in out.splitlines()[1]


# --- bad input -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "nolabel.csv").write_text("a,b\n1,2\n3,4\n")
    (folder / "text.csv").write_text("f1,label\n1,0\nabc,1\n")
    (folder / "ragged.csv").write_text("f1,label\n1,0\n2\n")
    (folder / "nan.csv").write_text("f1,label\n1,0\nnan,1\n")
    (folder / "dir.csv").mkdir()
    (folder / "garbage.npz").write_bytes(b"not a zip file")
    (folder / "labelonly.csv").write_text("label\n0\n1\n")
    np.savez(folder / "empty.npz", X=np.ones((0, 3)), y=np.ones(0))
    np.savez(folder / "nofeatures.npz", X=np.ones((4, 0)), y=np.arange(4))
    np.savez(folder / "noy.npz", X=np.ones((4, 2)))
    np.savez(folder / "strings.npz", X=np.array([["a", "b"]] * 4), y=np.arange(4))
    (folder / "data.txt").write_text("1,2\n")
    return folder


ONE_CYCLE = ["one_cycle", "total_steps=10", "warmup_steps=3"]
BAD = [
    (["train", "--data", "{bad}/missing.csv"], "missing.csv: no such file"),
    (["train", "--data", "{bad}/dir.csv"], "dir.csv: cannot read it"),
    (["train", "--data", "{bad}/nolabel.csv"], "no label column 'label' (columns: a, b)"),
    (["lr-find", "--data", "{bad}/text.csv"], "row 3, column 'f1': 'abc' is not a number"),
    (["train", "--data", "{bad}/nan.csv"], "'nan' is not a finite number"),
    (["train", "--data", "{bad}/ragged.csv"], "row 3 has 1 fields, the header 2"),
    (["train", "--data", "{bad}/garbage.npz"], "garbage.npz: not a valid .npz file"),
    (["train", "--data", "{bad}/empty.npz"], "empty.npz: no rows (X has shape (0, 3))"),
    (["train", "--data", "{bad}/nofeatures.npz"], "nofeatures.npz: no features"),
    (["train", "--data", "{bad}/labelonly.csv"], "no feature columns, only the label column"),
    (["train", "--data", "{bad}/noy.npz", "--label-column", "y"], "applies to .csv files only"),
    (["train", "--label-column", "y"], "--label-column 'y' applies to .csv files only"),
    (["train", "--data", "{bad}/noy.npz"], "no array 'y'"),
    (["train", "--data", "{bad}/strings.npz"], "X must be numeric"),
    (["train", "--data", "{bad}/data.txt"], "must be 'digits' or a .csv or .npz file"),
    (["train", "--schedule", "cosine_forever"], "unknown schedule 'cosine_forever'; known: "),
    (["train", "--param", "bogus=1"], "schedule one_cycle has no parameter 'bogus'"),
    (["train", "--param", "bogus"], "--param 'bogus' must be KEY=VALUE"),
    (["train", "--param", "total_steps=abc"], "total_steps='abc' is not a valid int"),
    (["train", "--param", "max_lr=-1"], "max_lr=-1.0 must be a finite number >= 0"),
    (["train", "--param", "max_lr=1", "--max-lr", "1"], "with --max-lr or with --param"),
    (["train", "--max-lr", "-0.1"], "argument --max-lr: an lr must be > 0, got '-0.1'"),
    (["train", "--max-lr", "fast"], "argument --max-lr: 'fast' is not a number"),
    (["train", "--epochs", "0"], "argument --epochs: a count must be > 0"),
    (["train", "--epochs", "2.5"], "argument --epochs: '2.5' is not an integer"),
    (["train", "--seed", "x"], "argument --seed: 'x' is not an integer"),
    (["train", "--seed", str(2**64)], "argument --seed: a seed must be in [-2**63, 2**64)"),
    (["train", "--device", "abacus"], "--device 'abacus' is not a device"),
    (["train", "--device", "meta"], "--device 'meta' is not a device here: give cpu, cuda"),
    (["lr-find", "--device", "cuda:x"], "--device 'cuda:x' is not a device here"),
    (["train", "--epochs", "1e12"], "--epochs: a count must be at most 10000000, got '1e12'"),
    (["train", "--epochs", "1000000"], "--epochs 1000000 is 22000000 updates (22 an epoch)"),
    (["train", "--out", "{bad}/data.txt"], "--out {bad}/data.txt: exists and is not a directory"),
    (["lr-find", "--out", "{bad}/data.txt/x"], "data.txt/x: cannot make the directory"),
    (["train", "--schedule", "cosine_restarts", "--max-lr", "1"], "--param cycle_steps=VALUE"),
    (["train", "--backend", "gpu"], "argument --backend: invalid choice: 'gpu'"),
    (["train", "--schedule", "exponential_ramp", "--max-lr", "1"], "has no max_lr or lr"),
    (["train", "--learning-rate", "1"], "unrecognized arguments: --learning-rate 1"),
    (["lr-find", "--start-lr", "1", "--end-lr", "0.5"], "start_lr=1.0 must be < end_lr=0.5"),
    (["lr-find", "--num-steps", "1"], "num_steps=1 must be an int >= 2"),
    (["lr-find", "--num-steps", "100000000000"], "a count must be at most 1000000"),
    (["lr-find", "--end-lr", "inf"], "argument --end-lr: an lr must be finite, got 'inf'"),
    (["lr-find", "--end-lr", "1e400"], "argument --end-lr: an lr must be finite, got '1e400'"),
    (["lr-find", "--method", "best"], "argument --method: invalid choice: 'best'"),
    (["plot", "one_cycle", "max_lr=0.1"], "one_cycle needs total_steps, warmup_steps"),
    (["plot", "one_cycle", "max_lr=0.1", "total_steps=9"], "(give --warmup_steps VALUE)"),
    (["plot", *ONE_CYCLE, "max_lr=0.1", "--until", "1e10"], "at most 1000000, got '1e10'"),
    (["plot", "warmup", "max_lr=1", "warmup_steps=1e8"], "give --until N (at most 1000000)"),
    (["plot", *ONE_CYCLE, "max_lr=0.1", "--out", "{bad}"], "is a directory; give a file"),
    (["plot", *ONE_CYCLE, "max_lr=0.1", "--out", "{bad}/x.v2"], "x.v2: unknown image type"),
    (["plot", *ONE_CYCLE, "max_lr=-0.1"], "max_lr=-0.1 must be a finite number >= 0"),
    (["plot", *ONE_CYCLE, "--max_lr"], "--max_lr needs a value"),
    (["plot", *ONE_CYCLE, "max_lr=0.1", "oops"], "unexpected argument 'oops'"),
    (["plot", *ONE_CYCLE, "max_lr=0.1", "max-lr=0.2"], "parameter max_lr given twice"),
    (["plot", *ONE_CYCLE, "max_lr=0.1", "final_drop=0.5"], "final_drop=0.5 must be a pair"),
    (["plot", "warmup", "max_lr=0.1", "warmup_steps=1.5"], "warmup_steps='1.5' is not a valid"),
    (["plot", "hf", "name=cosinus", "max_lr=0.1"], "cosinus"),
    ([], "choose a command: train, lr-find or plot"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_exits_2_with_one_line(argv, message, bad_files, capsys):
    status, out, err = run(capsys, *(a.format(bad=bad_files) for a in argv))
    assert status == 2
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("fused-sched: error: ") and message.format(bad=bad_files) in err, err
    assert "Traceback" not in err


def test_cuda_device_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    status, _, err = run(capsys, "train", "--device", "cuda")
    assert status == 2
    assert (
        err == "fused-sched: error: --device cuda: CUDA is not available here (use --device cpu)\n"
    )


# --- the installed console script ----------------------------------------------------------------


def console_script() -> str:
    script = Path(sys.executable).with_name("fused-sched")
    return str(script) if script.exists() else shutil.which("fused-sched")


def test_console_script(tmp_path):
    script = console_script()
    assert script, "the fused-sched console script is not installed (pip install -e .)"
    done = subprocess.run(
        [script, "plot", "warmup", "--max_lr", "0.1", "--warmup_steps", "10", "--out",
         tmp_path / "w.png"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "peak 0.1 (update 10)" in done.stdout
    assert (tmp_path / "w.png").read_bytes()[:8] == PNG

    done = subprocess.run(
        [script, "train", "--data", tmp_path / "missing.csv"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"fused-sched: error: {tmp_path / 'missing.csv'}: no such file\n"
