"""Links between devices and the cost of a ring all-reduce over them (the alpha-beta model).

Used by lessons 05 (why AlexNet scales worse than ResNet-50) and 06 (the measured all-reduce
against the chapter's links).

Data-parallel training all-reduces one gradient value per parameter after every step. The ring
algorithm (NCCL, Horovod, MPI libraries) passes the data around ``p`` devices in ``p`` chunks,
twice (reduce-scatter, then all-gather): ``2(p-1)`` messages of ``n/p`` bytes, so

    t = 2(p-1) * alpha + 2(p-1)/p * n / B

with ``alpha`` the latency of one message and ``B`` the bandwidth of one link in one direction
(each device sends to one neighbour while it receives from the other). Running two rings in
opposite directions over full-duplex links, as NCCL does, halves the second term.

Every bandwidth here is **per direction**, as in data/interconnects.csv. Vendors often quote a
link counting both directions (NVLink 2.0's "50 GB/s per link"); :attr:`Link.both_directions_gb_per_s`
gives that figure, computed, so a lesson can say which one the chapter means.
"""

from __future__ import annotations

from dataclasses import dataclass

from utils.errors import number, whole_number

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

    @property
    def both_directions_gb_per_s(self) -> float:
        """Both directions together, GB/s: the figure data sheets often quote per link."""
        return 2 * self.gb_per_s


def links(data_dir: object = None) -> dict[str, Link]:
    """The reference links of data/interconnects.csv, by name, in the file's order."""
    from utils import data

    table = data.load("interconnects", data_dir)
    return {row["link"]: Link(row["link"], row["bandwidth_gbs_per_direction"] * 1e9,
                              row["connects"], row["source"], row["note"] or "")
            for row in table.to_dict("records")}


def allreduce_bytes(parameters: int, bytes_per_value: int = GRADIENT_BYTES) -> int:
    """Bytes of gradients each replica all-reduces per step: one value per parameter.

    Raises:
        ArgumentError: ``parameters`` or ``bytes_per_value`` is not a whole number >= 1.
    """
    return (whole_number(parameters, "parameters", minimum=1)
            * whole_number(bytes_per_value, "bytes_per_value", minimum=1))


def ring_allreduce_seconds(nbytes: float, devices: int, bandwidth_bytes_per_s: float,
                           latency_s: float = 0.0) -> float:
    """Alpha-beta time of a ring all-reduce of ``nbytes`` over ``devices`` devices:
    ``2(p-1) * latency_s + 2(p-1)/p * nbytes / bandwidth``. One device communicates nothing.

    Raises:
        ArgumentError: ``devices`` is not a whole number >= 1, ``nbytes`` or ``latency_s`` is
            negative, or the bandwidth is not positive.
    """
    p = whole_number(devices, "devices", minimum=1)
    n = number(nbytes, "nbytes", minimum=0)
    alpha = number(latency_s, "latency_s", minimum=0)
    beta = number(bandwidth_bytes_per_s, "bandwidth_bytes_per_s", above=0)
    if p == 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n / beta
