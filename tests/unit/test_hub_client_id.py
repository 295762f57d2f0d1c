"""Hub MQTT client ids are unique per process and worker: two hub processes never take each other's session."""

import os
import subprocess
import sys

from sync.hub import unique_client_id


def test_client_id_names_host_pid_and_worker():
    ours = unique_client_id("w1")
    assert ours.startswith("hub-") and ours.endswith(f"-{os.getpid()}-w1")
    assert unique_client_id("w2") != ours
    code = "from sync.hub import unique_client_id; print(unique_client_id('w1'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other != ours and other.endswith("-w1")
    assert all(c.isalnum() or c in "-_." for c in ours)
