"""EXPOSE: ports (with ranges and protocols) into ExposedPorts."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import ExposeInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


class PortError(ValueError):
    pass


def port_specs(word: str) -> list[str]:
    """docker's nat.ParsePortSpecs for one word: `80`, `80/udp`, `8000-8002/tcp`, `1.2.3.4:80:80`."""
    spec = word.rsplit(":", 1)[-1] if ":" in word else word
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"invalid proto: {proto}")
    start, _, end = port.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise PortError(f"invalid containerPort: {port}")
    first, last = int(start), int(end or start)
    if last < first or last > 65535:
        raise PortError(f"invalid containerPort: {port}")
    return [f"{p}/{proto}" for p in range(first, last + 1)]


def execute(inst: ExposeInstruction, ctx: CommandContext) -> Outcome:
    ports: list[str] = []
    for expanded in ctx.expanded(inst).ports:
        try:
            ports.extend(port_specs(expanded))
        except PortError as e:
            raise inst.error(f"EXPOSE {expanded}: {e}") from None
    existing = set(ctx.image.config.exposed_ports or [])
    ctx.image.config.exposed_ports = sorted(existing | set(ports))
    return Outcome(created_by=history.expose(set(ports)))
