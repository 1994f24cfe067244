"""Hosts as network namespaces: three "hosts" and a broker namespace, linked by veth pairs.

``hosts(3)`` makes a namespace for the broker and one per host, each host linked to
the broker's namespace by a veth pair on its own private /30 (10.201.K.0/30, no
route anywhere else), and one more pair from our own namespace (where the
collector and the test run) to the broker's. Where the kernel or our privileges
refuse, it yields None and the reason, and the caller runs on loopback instead.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Host:
    """One host namespace: its name, its end of the link, and the broker's address for it."""

    name: str
    link: str
    """Its veth interface (``ip -n NAME link set LINK down`` cuts the host off)."""
    broker_address: str

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def link_up(self, up: bool) -> None:
        _ip("-n", self.name, "link", "set", self.link, "up" if up else "down", check=True)


@dataclass(frozen=True, slots=True)
class Network:
    """The broker's namespace, its addresses, and the hosts."""

    broker: str
    our_address: str
    """The broker's address on the link from our namespace."""
    addresses: tuple[str, ...]
    """Every address of the broker's namespace (what redis-server binds)."""
    hosts: tuple[Host, ...]


class Refused(Exception):
    """The kernel or our privileges do not allow namespaces here."""


def _ip(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)
    if check and done.returncode != 0:
        raise Refused(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _free_octets(count: int) -> list[int]:
    used = (
        _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show", "table", "all").stdout
    )
    free = [k for k in range(1, 255) if f"10.201.{k}." not in used]
    random.shuffle(free)
    return free[:count]


@contextlib.contextmanager
def hosts(count: int) -> Iterator[tuple[Network | None, str]]:
    """``(network, "")``, or ``(None, reason)`` where namespaces are refused."""
    if shutil.which("ip") is None:
        yield None, "no `ip` command (iproute2)"
        return
    if os.geteuid() != 0:
        yield None, "`ip netns add` needs root"
        return
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    broker = f"rlt-broker-{tag}"
    made: list[str] = []
    links: list[str] = []
    try:
        _ip("netns", "add", broker, check=True)
        made.append(broker)
        _ip("-n", broker, "link", "set", "lo", "up", check=True)
        octets = _free_octets(count + 1)
        spaces: list[Host] = []
        addresses = ["127.0.0.1"]
        for i, k in enumerate(octets):
            ours = i == count  # the last link is our own namespace's
            name = "" if ours else f"rlt-host-{tag}-{i}"
            near, far = f"rltb{tag}{i}", f"rlth{tag}{i}"
            if not ours:
                _ip("netns", "add", name, check=True)
                made.append(name)
                _ip("-n", name, "link", "set", "lo", "up", check=True)
            where = ["netns", name] if not ours else []
            _ip(
                "link",
                "add",
                far,
                "type",
                "veth",
                "peer",
                "name",
                near,
                "netns",
                broker,
                check=True,
            )
            links.append(far)
            if where:
                _ip("link", "set", far, *where, check=True)
            side = ["-n", name] if not ours else []
            _ip("-n", broker, "addr", "add", f"10.201.{k}.1/30", "dev", near, check=True)
            _ip("-n", broker, "link", "set", near, "up", check=True)
            _ip(*side, "addr", "add", f"10.201.{k}.2/30", "dev", far, check=True)
            _ip(*side, "link", "set", far, "up", check=True)
            addresses.append(f"10.201.{k}.1")
            if not ours:
                spaces.append(Host(name, far, f"10.201.{k}.1"))
        yield Network(broker, addresses[-1], tuple(addresses), tuple(spaces)), ""
    except Refused as exc:
        yield None, str(exc)
    finally:
        for link in links:
            _ip("link", "del", link)  # ours; the others go with their namespace
        for name in reversed(made):
            _ip("netns", "del", name)
