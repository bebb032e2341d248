"""What CPU a benchmark ran on, as torch and the kernel report it: printed beside every figure.

Model names alone mislead ("AMD EPYC" machines of this workplace report AVX-512 and avx512_bf16), and the levers
that pay depend on exactly these flags (bf16 autocast, popcount matching)."""
from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vpopcntdq", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The FLAGS /proc/cpuinfo lists (Linux); [] elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    found = set(re.findall(r"^flags\s*:(.*)$", text, re.M)[0].split()) if "flags" in text else set()
    return [f for f in FLAGS if f in found]


def cpu_model() -> str:
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        m = None
    return m.group(1).strip() if m else (platform.processor() or platform.machine())


def describe() -> str:
    """One line: model, torch's CPU capability, the relevant /proc/cpuinfo flags, torch version."""
    return (f"{cpu_model()}, torch capability {torch.backends.cpu.get_cpu_capability()}, cpuinfo flags "
            f"{' '.join(cpu_flags()) or 'n/a'}, torch {torch.__version__}")


if __name__ == "__main__":
    print(describe())
