"""The installed agent's configuration file (TOML, `/etc/relayops/agent.toml`; every key is
described in docs/install-locker.md), and what it builds: the board, the readers, the agent.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import LockBoard, SimulatedBoard
from firmware_bridge.agent.kerong import KerongBoard, KerongConfig
from firmware_bridge.agent.readers import (
    Keypad,
    Reader,
    ReaderPanel,
    SerialScanner,
    UsbKeypadKeys,
    WedgeScanner,
)
from firmware_bridge.agent.state import AgentSettings
from firmware_bridge.identity import LockerIdentity
from firmware_bridge.simulator import parse_broker

_TOP_KEYS = {"locker_id", "bundle", "journal", "broker", "log_level", "log_file",
             "log_max_bytes", "log_backups", "board", "readers", "agent"}
_READER_KEYS = {"qr_serial", "qr_serial_baudrate", "qr_wedge", "keypad", "grab"}
_SETTINGS = {f.name for f in dataclasses.fields(AgentSettings)}


@dataclass(frozen=True)
class AgentConfig:
    locker_id: str
    bundle: Path
    journal: Path
    board: Mapping[str, Any]
    readers: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    broker: str | None = None  # host:port; by default the bundle's broker URL
    log_level: str = "INFO"
    log_file: Path | None = None
    log_max_bytes: int = 5_000_000
    log_backups: int = 5

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        with path.open("rb") as handle:
            return cls.from_dict(tomllib.load(handle))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentConfig:
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        for key in ("locker_id", "bundle", "journal", "board"):
            if key not in data:
                raise ValueError(f"{key} is required")
        readers, settings = dict(data.get("readers", {})), dict(data.get("agent", {}))
        for what, given, known in (("readers", readers, _READER_KEYS),
                                   ("agent settings", settings, _SETTINGS)):
            if set(given) - known:
                raise ValueError(f"unknown {what}: {', '.join(sorted(set(given) - known))}")
        board = dict(data["board"])
        if board.get("driver") not in ("kerong", "simulated"):
            raise ValueError("board.driver is 'kerong' or 'simulated'")
        if board["driver"] == "kerong":
            KerongConfig.from_dict(board)  # refused now, not at the first door
        log_file = data.get("log_file")
        return cls(
            locker_id=str(data["locker_id"]), bundle=Path(data["bundle"]),
            journal=Path(data["journal"]), board=board, readers=readers, settings=settings,
            broker=data.get("broker"), log_level=str(data.get("log_level", "INFO")),
            log_file=Path(log_file) if log_file else None,
            log_max_bytes=int(data.get("log_max_bytes", 5_000_000)),
            log_backups=int(data.get("log_backups", 5)),
        )


def configure_logging(config: AgentConfig) -> None:
    """Standard error always (systemd's journal keeps it, size-capped by journald); with
    `log_file`, also a file the agent rotates itself (no logrotate needed)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            config.log_file, maxBytes=config.log_max_bytes, backupCount=config.log_backups))
    logging.basicConfig(level=config.log_level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def build_board(board: Mapping[str, Any]) -> LockBoard:
    if board["driver"] == "simulated":
        return SimulatedBoard(list(range(1, int(board.get("compartments", 12)) + 1)))
    return KerongBoard(KerongConfig.from_dict(board))


def build_readers(readers: Mapping[str, Any]) -> ReaderPanel | None:
    grab = bool(readers.get("grab", True))
    found: list[Reader] = []
    if "qr_serial" in readers:
        found.append(SerialScanner(str(readers["qr_serial"]),
                                   baudrate=int(readers.get("qr_serial_baudrate", 9600))))
    if "qr_wedge" in readers:
        found.append(WedgeScanner(str(readers["qr_wedge"]), grab=grab))
    if "keypad" in readers:
        found.append(Keypad(UsbKeypadKeys(str(readers["keypad"]), grab=grab)))
    return ReaderPanel(found) if found else None


def build_agent(config: AgentConfig, board: LockBoard,
                watchdog: Callable[[], None] | None = None) -> LockerAgent:
    identity = LockerIdentity.load(config.bundle)
    host, port = (parse_broker(config.broker) if config.broker
                  else identity.broker_address())
    config.journal.parent.mkdir(parents=True, exist_ok=True)
    return LockerAgent(config.locker_id, board, host, port, config.journal,
                       reader=build_readers(config.readers),
                       settings=AgentSettings(**config.settings), identity=identity,
                       watchdog=watchdog)
