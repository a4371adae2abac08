"""GPU specs from ``expert_rules/hardware.yaml``, matched to the device a backend reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eggsearch.config_files import EXPERT_RULES_DIR, check_keys, check_mapping, load_yaml
from eggsearch.errors import ConfigFileError

# Integer limits each GPU entry of hardware.yaml gives.
_SPEC_INTS = ("num_sms", "smem_per_block", "regs_per_block", "max_regs_per_thread",
              "max_threads_per_block", "l2_bytes")
# Names a constraint expression may use about the hardware: the limits, ``sm`` (the compute
# capability as major * 10 + minor, e.g. 90) and ``interpreter`` (1 on Triton's CPU
# interpreter, which claims an H100's limits but runs no sm_90-only code such as Gluon's).
HARDWARE_VARIABLES = (*_SPEC_INTS, "sm", "interpreter")
_KEYS = ("match", "compute_capability", *_SPEC_INTS, "peak_bandwidth", "copy_bandwidth",
         "peak_flops")


@dataclass(frozen=True)
class HardwareSpec:
    name: str
    compute_capability: tuple[int, int]
    num_sms: int
    smem_per_block: int
    regs_per_block: int
    max_regs_per_thread: int
    max_threads_per_block: int
    l2_bytes: int
    peak_bandwidth: float | None = None
    copy_bandwidth: float | None = None
    peak_flops: dict[str, float] = field(default_factory=dict)
    match: tuple[str, ...] = ()

    def variables(self) -> dict[str, int]:
        major, minor = self.compute_capability
        return {**{k: getattr(self, k) for k in _SPEC_INTS}, "sm": 10 * major + minor,
                "interpreter": int(self.name == "interpreter")}


def load_hardware(path: Path | None = None) -> dict[str, HardwareSpec]:
    path = path or EXPERT_RULES_DIR / "hardware.yaml"
    data = check_keys(load_yaml(path), str(path), required=["gpus"])
    specs = {}
    for name, raw in check_mapping(data["gpus"], f"{path}: gpus").items():
        where = f"{path}: gpus.{name}"
        check_keys(raw, where, required=_KEYS)
        try:
            specs[name] = HardwareSpec(
                name=name, compute_capability=tuple(int(v) for v in raw["compute_capability"]),
                **{k: int(raw[k]) for k in _SPEC_INTS},
                peak_bandwidth=_opt_float(raw["peak_bandwidth"]),
                copy_bandwidth=_opt_float(raw["copy_bandwidth"]),
                peak_flops={str(k): float(v) for k, v in (raw["peak_flops"] or {}).items()},
                match=tuple(str(m) for m in raw["match"] or ()))
        except (TypeError, ValueError) as exc:
            raise ConfigFileError(f"{where}: {exc}") from None
    if "interpreter" not in specs:
        raise ConfigFileError(f"{path}: needs an 'interpreter' entry for the CPU backend")
    return specs


def _opt_float(v) -> float | None:
    return None if v is None else float(v)


def spec_for_device(device: dict, specs: dict[str, HardwareSpec]) -> HardwareSpec:
    """The spec for a device described by a backend (``name``, ``interpreter``, properties).

    An unknown GPU gets a spec built from its own reported properties and no peak rates, so the
    run works but claims no roofline.
    """
    if device.get("interpreter"):
        return specs["interpreter"]
    name = device.get("name", "").lower()
    for spec in specs.values():
        if any(m.lower() in name for m in spec.match):
            return spec
    return HardwareSpec(
        name=device.get("name", "unknown"),
        compute_capability=tuple(device.get("compute_capability", (0, 0))),
        num_sms=int(device.get("num_sms", 1)),
        smem_per_block=int(device.get("smem_per_block", 49152)),
        regs_per_block=65536, max_regs_per_thread=255, max_threads_per_block=1024,
        l2_bytes=int(device.get("l2_bytes", 0)))
