from catneuron.probe.report import table_rows


def _set(accuracy: float, label: str, where: str = "") -> dict:
    result = {"accuracy": accuracy, "auc": 0.5, "detector": f"stage1/pool map 0 at (0,0){where}"}
    held = {**result, "val_accuracy": accuracy}
    return {"label": label, "paper": result, "heldout": held,
            "groups": {"stage1/pool": {"paper": result, "heldout": held}}}


def test_whole_and_field_rows_that_coincide_are_one_row_and_those_that_differ_stay_two():
    task = {"set": {"all_negative": 0.6},
            "detectors": {"trained-whole": _set(0.7, "trained"), "trained-field": _set(0.7, "trained", ", image at (0,0)"),
                          "random-whole": _set(0.65, "random"), "random-field": _set(0.66, "random")}}
    labels = [label for label, _, _, _ in table_rows(task)]
    assert "best neuron (whole = field)" in labels and "best first-layer neuron (whole = field)" in labels
    assert "best neuron (whole)" not in labels
    assert {"same architecture, random weights (whole)", "same architecture, random weights (field)"} <= set(labels)
