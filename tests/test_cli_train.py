"""`tsf train` and `tsf eval` through the CLI, on the tiny labelled sets of tests/_training.py."""

from __future__ import annotations

import csv
import json

import pytest

from tests._cli import invoke
from tests._videos import make_video


def test_train_then_eval_through_the_cli(dataset, base, tmp_path):
    out = tmp_path / "model"
    result = invoke(
        "train",
        dataset / "data",
        "-o",
        out,
        "--model",
        base,
        "--from-scratch",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--min-crop-scale",
        "0.8",
        "--workers",
        "0",
        "--val-dir",
        dataset / "val",
    )
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in out.iterdir()}
    assert f"tsf classify VIDEO --model {out}" in result.stderr
    labels = json.loads((out / "config.json").read_text())["id2label"]
    assert sorted(labels.values()) == ["blue", "green", "red"]

    confusion = tmp_path / "confusion.csv"
    result = invoke("eval", dataset / "val", "--model", out, "--json", "--csv", confusion, "--workers", "0")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["count"] == 6
    assert sum(c["count"] for c in scores["per_class"]) == 6
    rows = list(csv.reader(confusion.open()))
    assert rows[0][0] == "true \\ predicted" and sum(int(n) for row in rows[1:] for n in row[1:]) == 6
    correct = sum(int(row[i]) for i, row in enumerate(rows[1:], start=1))  # the diagonal of the CSV's matrix
    assert scores["top1"] == correct / 6
    assert scores["confusion"]["counts"] == [[int(n) for n in row[1:]] for row in rows[1:]]

    table = invoke("eval", dataset / "val", "--model", out, "--workers", "0")
    assert table.exit_code == 0 and "confusion" in table.stdout and "top-5" in table.stdout


def test_train_on_a_missing_folder_is_one_error_line(base, tmp_path):
    result = invoke("train", tmp_path / "nothing", "-o", tmp_path / "out", "--model", base, "--from-scratch")
    assert result.exit_code == 2  # a labelled set that cannot be used is a bad argument
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'nothing'}: not a folder of class subfolders nor a .csv of path,label rows"
    )


def test_train_rejects_a_crop_scale_outside_0_05_to_1(base, tmp_path):
    result = invoke("train", tmp_path, "-o", tmp_path / "out", "--model", base, "--min-crop-scale", "1.5")
    assert result.exit_code == 2 and "--min-crop-scale" in result.stderr
    assert not (tmp_path / "out").exists()


def test_eval_checks_its_csv_folder_before_evaluating(dataset, base, tmp_path):
    target = tmp_path / "missing" / "confusion.csv"
    result = invoke("eval", dataset / "val", "--model", base, "--csv", target, "--workers", "0")
    assert result.exit_code == 6 and result.stderr.strip() == f"Error: {target}: no such folder {target.parent}"
    assert not target.parent.exists()


def test_eval_json_is_json_when_a_label_has_no_video_that_decodes(tmp_path):
    (tmp_path / "set" / "moving_up").mkdir(parents=True)
    (tmp_path / "set" / "moving_down").mkdir()
    make_video(tmp_path / "set" / "moving_up" / "a.mp4", frames=24)
    (tmp_path / "set" / "moving_down" / "b.mp4").write_text("not a video")
    result = invoke("eval", tmp_path / "set", "--model", "demo", "--json", "--workers", "0")
    scores = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    by_label = {c["label"]: c for c in scores["per_class"]}
    assert by_label["moving_down"] == {"label": "moving_down", "count": 0, "accuracy": None}
    table = invoke("eval", tmp_path / "set", "--model", "demo", "--workers", "0")
    assert "nan" not in table.stdout
