"""Plug-ins through entry points: settings (dict specs), workers and sidecars,
from a fake distribution put on the path of a real ``unicorn`` process."""

from __future__ import annotations

import os
import signal

import pytest
from harness import run_unicorn, wait_for

pytestmark = pytest.mark.timeout(40)


@pytest.fixture
def plugin_path(tmp_path):
    site = tmp_path / "site"
    info = site / "fakeplug-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[unicorn.settings]\nfake = fakeplug_mod:settings\n\n"
        "[unicorn.sidecars]\nfake = fakeplug_mod:FakeSidecar\n\n"
        "[unicorn.workers]\nfixed = fixed_worker:FixedWorker\n"
    )
    return str(site)


def test_plugin_settings_appear_in_help_and_config(plugin_path, tmp_path):
    env = {"PYTHONPATH": plugin_path}
    help_text = run_unicorn("--help", env=env).stdout
    assert "Fake Plugin:" in help_text and "--fake-dir DIR" in help_text
    assert "--fake-dir" not in run_unicorn("--help").stdout
    result = run_unicorn("--print-config", "--fake-level", "high", env={**env, "FAKE_DIR": "/x"})
    assert "fake_level" in result.stdout and "'high'" in result.stdout
    assert "fake_dir           = '/x'" in result.stdout or "= '/x'" in result.stdout
    bad = run_unicorn("--fake-level", "medium", "apps:app", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "'fake_level': 'medium'; expected one of 'low', 'high'" in bad.stderr


def test_worker_by_entry_point_name(plugin_path, start_server):
    server = start_server(worker="fixed", env={"PYTHONPATH": plugin_path}).ready()
    assert server.get()[0] == 200


def test_sidecar_is_supervised(plugin_path, start_server, tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    server = start_server(
        "--fake-sidecar",
        "--fake-dir",
        str(traces),
        "--graceful-timeout",
        "5",
        app="apps:env",
        env={"PYTHONPATH": plugin_path},
    ).ready(workers=2)  # one HTTP worker and the sidecar

    def sidecars():
        return {int(p.name.split("-")[1]) for p in traces.glob("sidecar-*")}

    (first,) = wait_for(sidecars, 10, "the sidecar")
    assert first in server.workers()
    # HTTP workers inherit worker_env()
    assert server.get("/FAKE_SIDECAR_DIR")[2].endswith(f"app={traces}")
    # the master's TTIN changes HTTP workers and is not forwarded
    server.signal(signal.SIGTTIN)
    server.wait_workers(3)  # two HTTP workers and the sidecar
    # USR1 (reopen logs) and HUP (reload) reach the sidecar as well
    server.signal(signal.SIGUSR1)
    wait_for(lambda: (traces / "events").exists(), 10, "USR1 at the sidecar")
    server.signal(signal.SIGHUP)

    def events():
        return (traces / "events").read_text().splitlines()

    wait_for(lambda: f"got-{int(signal.SIGHUP)}" in events(), 10, "HUP at the sidecar")
    assert events() == [f"got-{int(signal.SIGUSR1)}", f"got-{int(signal.SIGHUP)}"]
    (traces / "events").unlink()
    # a dead sidecar is respawned
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: sidecars() - {first}, 10, "a respawned sidecar").pop()
    server.wait_log(rf"Sidecar fake \(pid: {first}\) exited with SIGKILL")
    assert not (traces / "events").exists()  # TTIN was never forwarded
    # graceful stop: TERM to the sidecar, cleanup() once it is reaped
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert (traces / "events").read_text().splitlines() == ["cleanup"]
    server.wait_log(rf"Sidecar fake \(pid: {second}\) stopped")
    assert not os.path.exists(f"/proc/{second}")


def test_disabled_sidecar_is_not_started(plugin_path, start_server, tmp_path):
    server = start_server("--fake-dir", str(tmp_path), env={"PYTHONPATH": plugin_path}).ready()
    assert not list(tmp_path.glob("sidecar-*"))
    assert len(server.workers()) == 1


def test_usr2_new_master_runs_its_own_sidecar(plugin_path, start_server, tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    pidfile = tmp_path / "m.pid"
    server = start_server(
        "--fake-sidecar",
        "--fake-dir",
        str(traces),
        "-p",
        str(pidfile),
        env={"PYTHONPATH": plugin_path},
    ).ready(workers=2)

    def sidecars():
        return {int(p.name.split("-")[1]) for p in traces.glob("sidecar-*")}

    (old_sidecar,) = wait_for(sidecars, 10, "the sidecar")
    server.signal(signal.SIGUSR2)
    second = tmp_path / "m.pid.2"
    new_master = int(wait_for(lambda: second.exists() and second.read_text().strip(), 10, ".2"))
    try:
        new_sidecar = wait_for(lambda: sidecars() - {old_sidecar}, 10, "the new sidecar").pop()
        assert new_sidecar in server.workers(new_master)
        assert old_sidecar in server.workers()
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        assert not os.path.exists(f"/proc/{old_sidecar}")
        assert (traces / "events").read_text().splitlines() == ["cleanup"]
        assert new_sidecar in server.workers(new_master)
    finally:
        os.kill(new_master, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{new_master}"), 10, "the new master to exit")


def test_hup_starts_and_stops_sidecars_as_enabled_changes(plugin_path, start_server, tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    conf = tmp_path / "unicorn.conf.py"
    conf.write_text(f"fake_sidecar = False\nfake_dir = {str(traces)!r}\n")
    server = start_server("-c", str(conf), env={"PYTHONPATH": plugin_path}).ready()

    def sidecars():
        return {int(p.name.split("-")[1]) for p in traces.glob("sidecar-*")}

    assert not sidecars()
    conf.write_text(f"fake_sidecar = True\nfake_dir = {str(traces)!r}\n")
    server.signal(signal.SIGHUP)
    (sidecar,) = wait_for(sidecars, 10, "the sidecar after HUP")
    assert sidecar in server.workers()
    conf.write_text(f"fake_sidecar = False\nfake_dir = {str(traces)!r}\n")
    server.signal(signal.SIGHUP)
    server.wait_log(rf"Stopping sidecar fake \(pid: {sidecar}\): disabled")
    wait_for(lambda: (traces / "events").exists(), 10, "cleanup")
    assert (traces / "events").read_text().splitlines() == ["cleanup"]
    assert sidecar not in server.workers()
