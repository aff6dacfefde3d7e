"""What a single-host run listens on: torch's rendezvous store, given 127.0.0.1, listens on
every interface (docs/usage.md, "What listens on the network", says so and what to do). When a
torch release binds the given host instead, this fails and the docs change with it."""

import datetime

import psutil
import torch.distributed as dist

from layerwise.cli.common import free_port


def test_the_rendezvous_store_listens_on_every_interface_whatever_host_it_is_given():
    port = free_port()
    store = dist.TCPStore("127.0.0.1", port, 1, True, datetime.timedelta(seconds=10))
    try:
        listening = [
            c.laddr.ip
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
    finally:
        del store
    assert listening and set(listening) <= {"0.0.0.0", "::"}, listening
