"""``ecomai bench intents --train a.csv --test b.csv`` end to end on a tiny CSV pair: it reads text,label files,
trains the TF-IDF baseline and a MiniLM fine-tune in the same run, and writes JSON with accuracy, macro-F1, ECE and
training time. The baseline must beat chance on a separable toy task by a margin."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from bench.intents import main, read_csv, stratified_split

TOPICS = {
    "track": ["where is my parcel", "when does my order arrive", "track my delivery", "is my package shipped"],
    "refund": ["i want my money back", "refund me please", "give me a refund", "where is my refund"],
    "hello": ["hello there", "hi, good morning", "hey, how are you", "good evening"],
}


def _write(path: Path, seed: int, n: int, label_column: str = "label") -> None:
    rng = random.Random(seed)
    names = sorted(TOPICS)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", label_column])
        for i in range(n):
            name = names[i % 3]
            writer.writerow([rng.choice(TOPICS[name]) + rng.choice(["", "?", " please", ", thanks"]), name])


def test_csv_path_writes_json_with_every_model(tmp_path: Path) -> None:
    _write(tmp_path / "train.csv", 1, 60)
    _write(tmp_path / "test.csv", 2, 24, label_column="category")  # BANKING77's column name is accepted
    out = tmp_path / "result.json"
    argv = ["--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"), "--modes", "top"]
    argv += ["--epochs", "1", "--batch-size", "16", "--max-length", "16", "--valid-fraction", "0.2", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["benchmark"] == "train" and result["labels"] == 3 and result["test_examples"] == 24
    assert set(result["models"]) == {"tfidf_logreg", "minilm_top"}
    tuned = result["models"]["minilm_top"]
    assert {"accuracy", "macro_f1", "ece", "train_seconds", "temperature"} <= set(tuned)
    assert result["models"]["tfidf_logreg"]["accuracy"] >= 1 / 3 + 0.4  # chance is 1/3
    assert result["command"].startswith("ecomai bench intents --train")


def test_bad_csv_and_arguments_say_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("utterance,intent\nhi,hello\n")
    with pytest.raises(ValueError, match="need columns text and label"):
        read_csv(bad)
    with pytest.raises(SystemExit):
        main(["--train", str(bad)])  # --test missing


def test_stratified_split_keeps_every_label_in_both_parts() -> None:
    rows = [(f"t{i}", f"l{i % 4}") for i in range(40)]
    train, valid = stratified_split(rows, 0.1, seed=3)
    assert {y for _, y in train} == {y for _, y in valid} == {"l0", "l1", "l2", "l3"}
    assert len(train) + len(valid) == 40
