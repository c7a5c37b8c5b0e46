"""``napari-segnet evaluate``: FCN metrics and object metrics of hand-made predictions, per file and in total."""

import csv

import numpy as np
import pytest
import tifffile
from cli_helpers import main, truncate_compressed


def pair():
    """12×12 truth: two class-1 squares, one class-2 square. The prediction finds the first class-1 square and
    the class-2 square exactly, misses the second class-1 square and adds a false class-1 square."""
    gt = np.zeros((12, 12), np.uint8)
    gt[1:4, 1:4] = gt[1:4, 8:11] = 1
    gt[8:11, 1:4] = 2
    pred = gt.copy()
    pred[1:4, 8:11] = 0
    pred[8:11, 8:11] = 1
    return pred, gt


def write(tmp_path):
    pred, gt = pair()
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
    tifffile.imwrite(tmp_path / "pred" / "a_labels.tif", pred)
    tifffile.imwrite(tmp_path / "gt" / "a.tif", gt)
    tifffile.imwrite(tmp_path / "pred" / "b_labels.tif", gt)  # a perfect prediction
    tifffile.imwrite(tmp_path / "gt" / "b.tif", gt)


def test_one_pair_by_hand(tmp_path, capsys):
    write(tmp_path)
    status, out, _ = main(capsys, "evaluate", tmp_path / "pred" / "a_labels.tif", tmp_path / "gt" / "a.tif")
    assert status == 0
    header, row = out.split("\n")[:2]
    values = dict(zip(header.split(), row.split()))
    # confusion n00=108 n01=9 n10=9 n11=9 n22=9: accuracy 126/144, IU 108/126, 9/27, 9/9
    assert values["pixel_accuracy"] == "0.8750" and values["mean_accuracy"] == "0.8077"
    assert values["mean_iu"] == "0.7302" and values["frequency_weighted_iu"] == "0.8006"
    assert (values["iu_0"], values["iu_1"], values["iu_2"]) == ("0.8571", "0.3333", "1.0000")
    # objects: 2 of 3 true squares found, 1 false: precision = recall = F1 = 2/3, AP = 2/(2+1+1)
    assert values["precision@0.5"] == values["recall@0.5"] == values["f1@0.5"] == "0.6667"
    assert values["average_precision@0.5"] == "0.5000"


def test_folders_total_and_csv(tmp_path, capsys):
    write(tmp_path)
    status, out, err = main(capsys, "evaluate", tmp_path / "pred", tmp_path / "gt", "--csv", tmp_path / "s.csv")
    assert status == 0 and f"wrote {tmp_path / 's.csv'}" in err
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["file"] for r in rows] == ["a_labels.tif", "b_labels.tif", "total"]
    assert rows[1]["mean_iu"] == "1.0000" and rows[1]["f1@0.5"] == "1.0000"
    total = rows[2]  # summed confusion: accuracy 270/288, IU 225/243, 27/45, 18/18; objects tp 5, fp 1, fn 1
    assert total["pixel_accuracy"] == "0.9375" and total["mean_iu"] == "0.8420"
    assert total["precision@0.5"] == total["recall@0.5"] == total["f1@0.5"] == "0.8333"
    assert total["average_precision@0.5"] == "0.7143"
    assert out.split("\n")[3].startswith("total ")


@pytest.mark.parametrize("case, message", [
    ("unmatched", "1 predictions have no partner: c"),
    ("shape", "the prediction's shape (12, 12) differs from the ground truth's (5, 5)"),
    ("float", "holds float32 values, not integer labels"),
    ("csv", "cannot write"),
    ("missing", "no such image file or folder"),
    ("iou", "--iou must be an IoU in (0, 1], got 2"),
    ("instance ids", "the labels hold ids up to 70000, which as class ids would be 70001 classes"),
])
def test_bad_evaluations(tmp_path, capsys, case, message):
    write(tmp_path)
    args = [tmp_path / "pred", tmp_path / "gt"]
    if case == "unmatched":
        tifffile.imwrite(tmp_path / "pred" / "c_labels.tif", pair()[0])
    elif case == "shape":
        tifffile.imwrite(tmp_path / "gt" / "b.tif", np.zeros((5, 5), np.uint8))
    elif case == "float":
        tifffile.imwrite(tmp_path / "pred" / "b_labels.tif", pair()[0].astype(np.float32))
    elif case == "csv":
        (tmp_path / "a_file").write_text("x")
        args += ["--csv", tmp_path / "a_file" / "s.csv"]
    elif case == "iou":
        args += ["--iou", "2"]
    elif case == "instance ids":  # a confusion matrix of 70001² would not fit in memory
        tifffile.imwrite(tmp_path / "gt" / "b.tif", pair()[1].astype(np.int32) * 35000)
    else:
        args = [tmp_path / "nope", tmp_path / "gt"]
    status, out, err = main(capsys, "evaluate", *args)
    assert status == 2 and err.startswith("napari-segnet evaluate: error: ") and message in err, err


def test_a_truncated_compressed_prediction_is_one_message(tmp_path, capsys):
    """imagecodecs' DeflateError (a RuntimeError) escaped read_image: a traceback."""
    write(tmp_path)
    truncate_compressed(tmp_path / "pred" / "a_labels.tif", np.random.default_rng(0).integers(0, 3, (64, 64),
                                                                                               dtype=np.uint8))
    status, out, err = main(capsys, "evaluate", tmp_path / "pred", tmp_path / "gt")
    assert status == 2 and err.startswith("napari-segnet evaluate: error: PRED: cannot read a_labels.tif as an "
                                          "image ("), err
