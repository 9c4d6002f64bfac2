"""Control tables of the servo families the arms use: register name -> (address, size in bytes).

Addresses come from the vendors' manuals (Feetech STS/SMS series, ROBOTIS X series) and use the
register names LeRobot uses, so calibration files and logs read the same in both projects. The
driver and the fake share these tables: a register missing here is an invalid address for both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    """One control-table entry."""

    address: int
    size: int
    """Bytes (1, 2 or 4)."""
    writable: bool = True
    sign_bit: int | None = None
    """Feetech sign-magnitude encoding: the bit that holds the sign (None: unsigned/two's
    complement as the vendor defines)."""
    signed: bool = False
    """Two's complement (Dynamixel 4-byte positions and offsets)."""


# Feetech STS3215 (and the STS/SMS series): little-endian words, sign-magnitude where marked.
STS_TABLE: dict[str, Register] = {
    "Firmware_Major_Version": Register(0, 1, writable=False),
    "Firmware_Minor_Version": Register(1, 1, writable=False),
    "Model_Number": Register(3, 2, writable=False),
    "ID": Register(5, 1),
    "Baud_Rate": Register(6, 1),
    "Return_Delay_Time": Register(7, 1),
    "Min_Position_Limit": Register(9, 2),
    "Max_Position_Limit": Register(11, 2),
    "P_Coefficient": Register(21, 1),
    "D_Coefficient": Register(22, 1),
    "I_Coefficient": Register(23, 1),
    "Homing_Offset": Register(31, 2, sign_bit=11),
    "Operating_Mode": Register(33, 1),
    "Torque_Enable": Register(40, 1),
    "Acceleration": Register(41, 1),
    "Goal_Position": Register(42, 2, sign_bit=15),
    "Goal_Time": Register(44, 2),
    "Goal_Velocity": Register(46, 2, sign_bit=15),
    "Torque_Limit": Register(48, 2),
    "Lock": Register(55, 1),
    "Present_Position": Register(56, 2, writable=False, sign_bit=15),
    "Present_Velocity": Register(58, 2, writable=False, sign_bit=15),
    "Present_Load": Register(60, 2, writable=False, sign_bit=10),
    "Present_Voltage": Register(62, 1, writable=False),
    "Present_Temperature": Register(63, 1, writable=False),
    "Moving": Register(66, 1, writable=False),
}

# ROBOTIS X series (XL330, XL430, XM430, ...), protocol 2.0: little-endian, two's complement.
X_TABLE: dict[str, Register] = {
    "Model_Number": Register(0, 2, writable=False),
    "Firmware_Version": Register(6, 1, writable=False),
    "ID": Register(7, 1),
    "Baud_Rate": Register(8, 1),
    "Return_Delay_Time": Register(9, 1),
    "Drive_Mode": Register(10, 1),
    "Operating_Mode": Register(11, 1),
    "Homing_Offset": Register(20, 4, signed=True),
    "Max_Position_Limit": Register(48, 4),
    "Min_Position_Limit": Register(52, 4),
    "Torque_Enable": Register(64, 1),
    "LED": Register(65, 1),
    "Hardware_Error_Status": Register(70, 1, writable=False),
    "Position_P_Gain": Register(84, 2),
    "Profile_Velocity": Register(112, 4),
    "Goal_Position": Register(116, 4, signed=True),
    "Moving": Register(122, 1, writable=False),
    "Present_Current": Register(126, 2, writable=False, signed=True),
    "Present_Velocity": Register(128, 4, writable=False, signed=True),
    "Present_Position": Register(132, 4, writable=False, signed=True),
    "Present_Temperature": Register(146, 1, writable=False),
}


@dataclass(frozen=True)
class Model:
    """A servo model: its number (``Model_Number`` register), encoder resolution and table."""

    name: str
    number: int
    resolution: int
    table: dict[str, Register]


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("sts3215", 777, 4096, STS_TABLE),
        Model("sts3250", 2825, 4096, STS_TABLE),
        Model("xl330-m077", 1190, 4096, X_TABLE),
        Model("xl330-m288", 1200, 4096, X_TABLE),
        Model("xl430-w250", 1060, 4096, X_TABLE),
        Model("xm430-w350", 1020, 4096, X_TABLE),
    )
}


def model(name: str) -> Model:
    """The model ``name``; an unknown name lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown servo model {name!r}; known: {sorted(MODELS)}") from None


def model_name(number: int) -> str:
    """The model name of a ``Model_Number`` reading (or ``model <number>`` when unknown)."""
    for m in MODELS.values():
        if m.number == number:
            return m.name
    return f"model {number}"


def encode(reg: Register, value: int) -> int:
    """A signed integer as the register stores it (sign-magnitude or two's complement)."""
    value = int(value)
    if reg.sign_bit is not None and value < 0:
        return ((-value) & ((1 << reg.sign_bit) - 1)) | (1 << reg.sign_bit)
    if value < 0:
        return value & ((1 << (8 * reg.size)) - 1)
    return value


def decode(reg: Register, raw: int) -> int:
    """The signed integer a register's raw value stands for."""
    if reg.sign_bit is not None:
        magnitude = raw & ((1 << reg.sign_bit) - 1)
        return -magnitude if raw & (1 << reg.sign_bit) else magnitude
    if reg.signed and raw & (1 << (8 * reg.size - 1)):
        return raw - (1 << (8 * reg.size))
    return raw
