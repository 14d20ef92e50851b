"""Find this machine's GPU or TPU among the data-sheet rows of data/accelerators.csv.

``nvidia-smi`` says "Tesla T4" or "NVIDIA A100-SXM4-40GB", the PCI bus says "TPU v5e"; the data
file names devices "Tesla T4", "A100 SXM4 80GB", "TPU v5e". :func:`datasheet_row` matches them
by the model name alone (``t4``, ``a100``, ``tpu v5e``) and refuses to guess when several rows
match.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["model_key", "datasheet_row"]

_BRANDS = ("nvidia", "tesla", "geforce", "google", "cloud")


def model_key(device: str) -> str:
    """The model part of a data-file device name: ``"Tesla V100 SXM2"`` -> ``"v100"``,
    ``"TPU v5e"`` -> ``"tpu v5e"``, ``"GTX 580"`` -> ``"gtx 580"``."""
    words = [w for w in re.split(r"[\s_]+", device.lower().replace("(board)", "")) if w]
    words = [w for w in words if w not in _BRANDS]
    if not words:
        return ""
    if words[0] in ("tpu", "gtx", "rtx") and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


def datasheet_row(name: str | None, table: Any) -> Any | None:
    """The one row of ``table`` (data/accelerators.csv as a DataFrame) that ``name`` (as
    nvidia-smi or the TPU detection reports it) refers to, or None if none or several match."""
    if not name:
        return None
    text = " ".join(re.split(r"[\s_]+", name.lower()))
    matches = []
    for index, device in table["device"].items():
        key = model_key(str(device))
        if key and re.search(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", text):
            matches.append(index)
    return table.loc[matches[0]] if len(matches) == 1 else None
