"""Links between devices and the cost of a ring all-reduce over them (the alpha-beta model).

Data-parallel training all-reduces one gradient value per parameter after every step. The ring
algorithm (NCCL, Horovod, MPI libraries) passes the data around ``p`` devices in ``p`` chunks,
twice (reduce-scatter, then all-gather): ``2(p-1)`` messages of ``n/p`` bytes, so

    t = 2(p-1) * alpha + 2(p-1)/p * n / B

with ``alpha`` the latency of one message and ``B`` the bandwidth of one link in one direction
(each device sends to one neighbour while it receives from the other). Running two rings in
opposite directions over full-duplex links, as NCCL does, halves the second term. Reference
links come from data/interconnects.csv.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GRADIENT_BYTES", "Link", "links", "allreduce_bytes", "ring_allreduce_seconds"]

#: Bytes per gradient value in float32.
GRADIENT_BYTES = 4


@dataclass(frozen=True)
class Link:
    """A link: its bandwidth in one direction (bytes/s), what it joins, and its source."""

    name: str
    bandwidth_bytes_per_s: float
    connects: str = ""
    source: str = ""
    note: str = ""

    @property
    def gb_per_s(self) -> float:
        """Bandwidth in one direction, GB/s (10**9 bytes/s)."""
        return self.bandwidth_bytes_per_s / 1e9


def links(data_dir: object = None) -> dict[str, Link]:
    """The reference links of data/interconnects.csv, by name, in the file's order."""
    from utils import data

    table = data.load("interconnects", data_dir)
    return {row["link"]: Link(row["link"], row["bandwidth_gbs_per_direction"] * 1e9,
                              row["connects"], row["source"], row["note"] or "")
            for row in table.to_dict("records")}


def allreduce_bytes(parameters: int, bytes_per_value: int = GRADIENT_BYTES) -> int:
    """Bytes of gradients each replica all-reduces per step: one value per parameter."""
    if isinstance(parameters, bool) or not isinstance(parameters, int) or parameters < 1:
        raise ValueError(f"parameters must be a whole number >= 1, got {parameters!r}.")
    if bytes_per_value < 1:
        raise ValueError(f"bytes_per_value must be >= 1, got {bytes_per_value!r}.")
    return parameters * bytes_per_value


def ring_allreduce_seconds(nbytes: float, devices: int, bandwidth_bytes_per_s: float,
                           latency_s: float = 0.0) -> float:
    """Alpha-beta time of a ring all-reduce of ``nbytes`` over ``devices`` devices:
    ``2(p-1) * latency_s + 2(p-1)/p * nbytes / bandwidth``. One device communicates nothing."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a whole number >= 1, got {devices!r}.")
    if nbytes < 0 or latency_s < 0:
        raise ValueError("nbytes and latency_s must be >= 0.")
    if not bandwidth_bytes_per_s > 0:
        raise ValueError("bandwidth_bytes_per_s must be positive.")
    if devices == 1:
        return 0.0
    p = devices
    return 2 * (p - 1) * latency_s + 2 * (p - 1) / p * nbytes / bandwidth_bytes_per_s
