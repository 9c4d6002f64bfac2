"""``robot-learning export``: checkpoint or finetune run -> verified bundle (ONNX graph + policy.json [+ TensorRT engine])."""

from __future__ import annotations

import json

from rich.console import Console

from robot_learning.cli import COMMANDS
from robot_learning.config import ConfigError, build, check_values, load_config, to_container


@COMMANDS.register("export")
def export_command(args: list[str]) -> int:
    """Export ``checkpoint=DIR`` to ``out=DIR``; prints the bundle's summary."""
    from robot_learning.cli.eval import checkpoint_dir
    from robot_learning.export import ExportConfig, export_checkpoint
    from robot_learning.export.finetuned import export_finetuned, is_finetune_run
    from robot_learning.runtime.bundle import BUNDLE_FILE

    data = to_container(load_config("export", args))
    data.update(check_values(ExportConfig, data, where="export"))
    if data["steps"] is not None and data["steps"] < 1:
        raise ConfigError(
            f"steps={data['steps']} must be >= 1 sampler step (or null for the checkpoint's own count)"
        )
    finetuned = is_finetune_run(data["checkpoint"])
    if not finetuned:
        data["checkpoint"] = str(checkpoint_dir(data["checkpoint"]))
    cfg = build(ExportConfig, data, where="export")
    console = Console()
    with console.status("exporting") as status:
        out = (export_finetuned if finetuned else export_checkpoint)(
            cfg, report=lambda message: status.update(message) or console.print(f"  {message}")
        )
    spec = json.loads((out / BUNDLE_FILE).read_text())
    size = sum(f["bytes"] for f in spec["files"].values()) / 1e6
    console.print(
        f"[bold]export[/] {spec['policy']} ({spec['sampler']['name']}, {spec['sampler']['steps']} steps) -> {out}: "
        f"{', '.join(sorted(spec['files']))} ({size:.1f} MB), inputs {spec['input_keys']}, "
        f"{spec['control_rate_hz']:g} Hz, graph parity {spec['export']['parity_max_abs_error']:.1e} in "
        f"{spec['export']['seconds']} s"
    )
    return 0
