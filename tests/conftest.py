"""Shared pytest options.

``--serial-port URL --serial-protocol NAME`` runs the scanner contract suite
(tests/integration/test_scanner_contract.py) against a real device as well as
the simulators, e.g.::

    .venv/bin/pytest tests/integration/test_scanner_contract.py \\
        --serial-port /dev/serial/by-id/usb-FTDI_...-if00-port0 --serial-protocol scale
"""


def pytest_addoption(parser):
    group = parser.getgroup("checkpoint")
    group.addoption("--serial-port", default=None, help="pyserial URL of a real scanner for the contract suite")
    group.addoption("--serial-protocol", default="raw", help="protocol of the real scanner (mrz, scale, ...)")
    group.addoption("--serial-listen-s", type=float, default=10.0, help="how long to listen to the real scanner")


# ---------------------------------------------------------------- a real Mosquitto per test

import pytest  # noqa: E402

from sync.localbroker import LocalBroker  # noqa: E402


@pytest.fixture
def mosquitto(tmp_path):
    """A broker of our own on a free loopback port, which the test may kill and restart."""
    broker = LocalBroker(tmp_path / "broker").start()
    yield broker
    broker.stop()
