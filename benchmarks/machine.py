"""What the machine says about itself: its description for results.json (cores, CPU model,
Python, TensorFlow) and a process's memory from /proc/PID/status."""

from __future__ import annotations

import os
import platform
from typing import Any, Dict, Optional


def machine_info() -> Dict[str, Any]:
    import tensorflow as tf

    import auxpretrain

    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "tensorflow": tf.__version__, "auxpretrain": auxpretrain.__version__}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def proc_status_kib(pid: int, field: str) -> Optional[int]:
    """A KiB field of /proc/PID/status (VmRSS: resident memory now, VmHWM: its peak so far), or
    None when there is no such file (the process ended, or not Linux) or no such field."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
