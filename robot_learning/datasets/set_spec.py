"""Store a task's bounds, control mode and element names in a dataset recorded without them.

LeRobot's ``meta/info.json`` features have no bounds or control mode. A dataset recorded with
LeRobot on one of our tasks matches the task in everything else; :func:`complete_features` writes
what is missing, taken from the task's spec, as extra keys of each feature entry (``low``,
``high``, ``control_mode``; LeRobot ignores keys it does not know and still loads the dataset).
"""

from __future__ import annotations

from pathlib import Path

from robot_learning.datasets.atomic import write_json_atomic
from robot_learning.datasets.layout import INFO_PATH, DatasetError
from robot_learning.features import FeatureSpec


def complete_features(root: str | Path, task_features: FeatureSpec) -> list[str]:
    """Fill the dataset's missing bounds, control mode and names from ``task_features``.

    Every observation/action key of the task must be in the dataset with the same dtype and
    shape, else :class:`DatasetError` names the keys that differ (nothing is written). Returns
    one line per feature changed (empty when the dataset already carried everything).
    """
    from robot_learning.datasets.reader import LeRobotDataset

    root = Path(root)
    dataset = LeRobotDataset(root)
    keys = [k for k in task_features if k in dataset.features]
    wanted = [k for k in task_features if k.startswith("observation.") or k == "action"]
    missing = [k for k in wanted if k not in dataset.features]
    if missing:
        raise DatasetError(f"{root}: the task has features {missing} the dataset lacks")
    completed, notes = dataset.features.fill_unknown(task_features.select(keys))
    problems = completed.diff(task_features, keys=keys)
    if problems:
        raise DatasetError(
            f"{root}: the dataset does not match the task beyond what it cannot carry: "
            + "; ".join(problems)
        )
    if not notes:
        return []
    info = dict(dataset.info)
    for key in keys:
        entry = dict(info["features"][key])
        feature = completed[key]
        if feature.low is not None:
            entry["low"], entry["high"] = list(feature.low), list(feature.high)
        if feature.control_mode is not None:
            entry["control_mode"] = feature.control_mode
        if entry.get("names") is None and feature.names is not None:
            entry["names"] = list(feature.names)
        info["features"][key] = entry
    write_json_atomic(root / INFO_PATH, info)
    return notes
