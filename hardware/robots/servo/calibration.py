"""LeRobot-compatible motor calibration and the conversion between encoder ticks and units.

The file is LeRobot's: ``{motor_name: {"id", "drive_mode", "homing_offset", "range_min",
"range_max"}}`` with integers in the motors' own encoder ticks, so a calibration made with
LeRobot works here and the other way round. ``homing_offset`` is the value of the motors'
``Homing_Offset`` register (Feetech: present = actual - offset; Dynamixel: present = actual +
offset), chosen so that the pose the arm was calibrated in reads half a turn (2047);
``range_min``/``range_max`` are the ``Present_Position`` extremes seen while the joints were
moved through their range, and are written to the motors' position limits.

Units (LeRobot's ``use_degrees`` convention): joints in degrees, 0 at the middle of the
calibrated range, ``(ticks - mid) * 360 / (resolution - 1)``; the gripper in percent of its range,
0..100 (``drive_mode`` 1 reverses it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.robot import RobotError

FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


@dataclass
class MotorCalibration:
    """One motor's entry of a LeRobot calibration file (encoder ticks)."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    @property
    def mid(self) -> float:
        """The middle of the calibrated range (0 degrees)."""
        return (self.range_min + self.range_max) / 2


def calibration_to_json(cal: dict[str, MotorCalibration]) -> dict[str, Any]:
    """The JSON form written to ``<calibration_dir>/<type>/<id>.json``."""
    return {name: asdict(c) for name, c in cal.items()}


def calibration_from_json(
    data: Any, motors: dict[str, int], path: Path, fix: str
) -> dict[str, MotorCalibration]:
    """Parse and check a calibration file against the arm's ``motors`` (name -> id).

    ``fix`` is the command that recalibrates; every error names it and the file.
    """
    if not isinstance(data, dict) or set(data) != set(motors):
        names = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise RobotError(
            f"calibration file {path} is not for this arm (motors {names}, expected "
            f"{sorted(motors)}); delete it and run `{fix}`"
        )
    out = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or set(FIELDS) - set(entry):
            raise RobotError(
                f"calibration file {path}: motor {name!r} needs the fields {list(FIELDS)}; "
                f"run `{fix}`"
            )
        try:
            cal = MotorCalibration(**{k: int(entry[k]) for k in FIELDS})
        except (TypeError, ValueError):
            raise RobotError(
                f"calibration file {path}: motor {name!r} has non-integer values; run `{fix}`"
            ) from None
        if cal.id != motors[name]:
            raise RobotError(
                f"calibration file {path}: motor {name!r} has id {cal.id} but robot.motors says "
                f"{motors[name]}; fix robot.motors or run `{fix}`"
            )
        if cal.range_min >= cal.range_max:
            raise RobotError(
                f"calibration file {path}: motor {name!r} has range_min {cal.range_min} >= "
                f"range_max {cal.range_max}; run `{fix}`"
            )
        out[name] = cal
    return out


class UnitConverter:
    """Encoder ticks <-> units (degrees for joints, percent for ``percent_motors``) for a set
    of motors, given their calibration and encoder resolutions."""

    def __init__(
        self,
        names: list[str],
        cal: dict[str, MotorCalibration],
        resolutions: dict[str, int],
        percent_motors: tuple[str, ...],
    ) -> None:
        self.names = names
        c = [cal[n] for n in names]
        self.low_ticks = np.array([x.range_min for x in c], np.float64)
        self.high_ticks = np.array([x.range_max for x in c], np.float64)
        self.mid = (self.low_ticks + self.high_ticks) / 2
        self.deg_per_tick = np.array([360.0 / (resolutions[n] - 1) for n in names])
        self.percent = np.array([n in percent_motors for n in names])
        self.reverse = np.array([bool(x.drive_mode) for x in c]) & self.percent
        self.low, self.high = self.to_units(self.low_ticks), self.to_units(self.high_ticks)
        self.low, self.high = np.minimum(self.low, self.high), np.maximum(self.low, self.high)

    def to_units(self, ticks: np.ndarray) -> np.ndarray:
        """Present positions (ticks, clipped to the calibrated range) in units."""
        t = np.clip(np.asarray(ticks, np.float64), self.low_ticks, self.high_ticks)
        pct = (t - self.low_ticks) / (self.high_ticks - self.low_ticks) * 100.0
        pct = np.where(self.reverse, 100.0 - pct, pct)
        return np.where(self.percent, pct, (t - self.mid) * self.deg_per_tick)

    def to_ticks(self, units: np.ndarray) -> np.ndarray:
        """Goal positions in units as integer ticks inside the calibrated range."""
        u = np.asarray(units, np.float64)
        pct = np.where(self.reverse, 100.0 - u, u)
        from_pct = self.low_ticks + pct / 100.0 * (self.high_ticks - self.low_ticks)
        ticks = np.where(self.percent, from_pct, u / self.deg_per_tick + self.mid)
        return np.clip(np.rint(ticks), self.low_ticks, self.high_ticks).astype(np.int64)
