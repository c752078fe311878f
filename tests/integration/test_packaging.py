"""What can be checked of the container without a Docker engine: what it names exists."""

import json
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

from relay_ops import create_app

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_cmd() -> list[str]:
    line = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD"))
    return json.loads(line.removeprefix("CMD").strip())


def test_the_image_command_and_its_config_exist() -> None:
    cmd = dockerfile_cmd()
    assert cmd[0] == "gunicorn" and shutil.which("gunicorn", path=str(ROOT / ".venv/bin"))
    config = ROOT / cmd[cmd.index("-c") + 1]
    settings = runpy.run_path(str(config))
    module, factory = re.fullmatch(r"(\w+):(\w+)\(\)", settings["wsgi_app"]).groups()
    assert (module, factory) == ("relay_ops", "create_app") and callable(create_app)


def test_compose_commands_are_real_console_scripts() -> None:
    setup = (ROOT / "setup.cfg").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    for script in set(re.findall(r'command: \["([\w-]+)"', compose)):
        assert re.search(rf"^\s+{script} = ", setup, re.M), script


def test_the_broker_files_compose_mounts_are_the_ones_the_configuration_reads() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    mounts = dict(re.findall(r"- \./([\w/.-]+):(/mosquitto/config/[\w.]+):ro", compose))
    shipped = {source for source in mounts if source.startswith("config/")}
    assert shipped == {"config/mosquitto/production.conf", "config/mosquitto/acl"}
    assert all((ROOT / source).is_file() for source in shipped)
    config = (ROOT / "config/mosquitto/production.conf").read_text()
    read = set(re.findall(r"(/mosquitto/config/[\w.]+)", config))
    assert read == set(mounts.values()) - {"/mosquitto/config/mosquitto.conf"}


def test_the_image_runs_as_a_non_root_user() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [x.split()[1] for x in lines if x.startswith("USER ")]
    assert users and users[-1] != "root"


FREEZE_PROBE = """
import gc, runpy, sys, types, weakref
from relay_ops import create_app
hooks = runpy.run_path("config/gunicorn.conf.py")
worker = types.SimpleNamespace(wsgi=create_app({"DATABASE_URL": sys.argv[1]}))
class Cycle: pass
garbage = Cycle(); garbage.me = garbage
gone = weakref.ref(garbage); del garbage
hooks["post_worker_init"](worker)
print(gc.get_freeze_count(), gone() is None)
hooks["worker_exit"](None, worker)
"""


def test_a_ready_web_worker_leaves_its_startup_objects_out_of_the_collector(
        tmp_path: Path) -> None:
    """Gunicorn's hook freezes what the loaded app holds (relay_ops/heap.py), after
    collecting startup's garbage: a full collection in a request no longer scans them."""
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    done = subprocess.run([sys.executable, "-c", FREEZE_PROBE, url], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=120)
    frozen, collected = done.stdout.split()
    assert int(frozen) > 50_000 and collected == "True"
