"""A UDP relay that holds every datagram `delay` seconds each way: the lab's kernel
has no netem (CONFIG_NET_SCH_NETEM unset), so delay on a WireGuard tunnel comes from
putting this between the peer's wireguard-go and its endpoint.

    python udpdelay.py LISTEN_ADDRESS LISTEN_PORT UPSTREAM_ADDRESS UPSTREAM_PORT DELAY_S

Run inside the peer's namespace; point the peer's endpoint at LISTEN. Datagrams from
the upstream go back to whoever sent last to LISTEN."""

from __future__ import annotations

import asyncio
import socket
import sys


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, inside: bool) -> None:
        self.relay, self.inside = relay, inside

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.received(self.inside, data, addr)


class Relay:
    def __init__(self, delay: float, upstream: tuple[str, int]) -> None:
        self.delay, self.upstream = delay, upstream
        self.client: tuple[str, int] | None = None
        self.listen: asyncio.DatagramTransport | None = None
        self.out: asyncio.DatagramTransport | None = None

    def received(self, inside: bool, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        if inside:
            self.client = addr
            loop.call_later(self.delay, self._send, self.out, data, self.upstream)
        elif self.client is not None:
            loop.call_later(self.delay, self._send, self.listen, data, self.client)

    @staticmethod
    def _send(
        transport: asyncio.DatagramTransport | None, data: bytes, addr: tuple[str, int]
    ) -> None:
        if transport is not None:
            transport.sendto(data, addr)


async def main(listen: tuple[str, int], upstream: tuple[str, int], delay: float) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay(delay, upstream)
    family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
    relay.listen, _ = await loop.create_datagram_endpoint(
        lambda: _Side(relay, True), local_addr=listen, family=family
    )
    relay.out, _ = await loop.create_datagram_endpoint(
        lambda: _Side(relay, False), local_addr=(listen[0], 0), family=family
    )
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    host, port, up_host, up_port, seconds = sys.argv[1:6]
    asyncio.run(main((host, int(port)), (up_host, int(up_port)), float(seconds)))
