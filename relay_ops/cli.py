"""Operator commands: ``relay-ops <command>``.

The CLI composes: it builds the app and attaches its commands (`create_operator_app`). The app
factory never imports this module, so the commands may use the job runner and the worker, which
build the app themselves, without an import circle.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from firmware_bridge.identity import write_bundle
from firmware_bridge.tls import write_deployment_certs
from relay_ops.cli_common import ReportDomainErrors, ctx, metrics_options
from relay_ops.cli_season import demand_index_group
from relay_ops.db import migrate
from relay_ops.services import (
    accounts,
    expiry,
    locker_dropoff,
    locker_identity,
    locker_registry,
    locker_views,
    opening_hours,
    producers,
    site_search,
    sites,
)
from relay_ops.services.principal import SYSTEM


@click.group(cls=ReportDomainErrors)
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION."""
    migrate.upgrade(ctx().db.engine, revision)
    click.echo(f"database at {migrate.current_revision(ctx().db.engine)}")


@click.group("site", cls=ReportDomainErrors)
def site_group() -> None:
    """Relay shops and lockers."""


def _parse_locations(spec: str) -> list[dict[str, Any]]:
    """``A1:M:20,A2:S:30`` → shelf A1 of class M for 20 parcels, A2 of class S for 30."""
    result = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            label, size_class, capacity = part.split(":")
            result.append({"label": label, "size_class": size_class, "capacity": int(capacity)})
        except ValueError:
            raise click.BadParameter(f"{part!r}: use LABEL:CLASS:CAPACITY") from None
    return result


@site_group.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice(["shop", "locker", "storage"]), default="shop",
              show_default=True)
@click.option("--address", required=True)
@click.option("--postcode", required=True)
@click.option("--city", required=True)
@click.option("--lat", "latitude", type=float, required=True)
@click.option("--lon", "longitude", type=float, required=True)
@click.option("--area", type=click.Choice(["town", "countryside"]), default="countryside")
@click.option("--hours", help='JSON, e.g. {"mon": [["09:00", "19:00"]]}, or "24/7"; '
              "required for a shop, a locker defaults to 24/7")
@click.option("--step-free/--no-step-free", default=False)
@click.option("--locations", default="", help="LABEL:CLASS:CAPACITY,... e.g. A1:M:20,A2:S:30")
@click.option("--season-from", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="a storage site opened for a season: its first day")
@click.option("--season-to", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="a storage site opened for a season: its last day")
def site_create(hours: str | None, step_free: bool, locations: str, season_from: Any,
                season_to: Any, **fields: Any) -> None:
    """Create a site (a shop, a locker, or an overflow storage site)."""
    data: dict[str, Any] = dict(fields, step_free_access=step_free)
    if season_from or season_to:
        data["season"] = {"from": season_from.date() if season_from else None,
                          "to": season_to.date() if season_to else None}
    if hours:
        data["opening_hours"] = _parse_hours(hours)
    data["locations"] = _parse_locations(locations)
    click.echo(json.dumps(sites.create_site(ctx(), SYSTEM, data), indent=2))


@site_group.command("hours")
@click.argument("code")
@click.argument("hours")
def site_hours(code: str, hours: str) -> None:
    """Set site CODE's opening hours: JSON, e.g. '{"mon": [["09:00", "19:00"]]}', or "24/7"."""
    site = opening_hours.set_opening_hours(ctx(), SYSTEM, sites.site_id_for_code(ctx(), code),
                                   _parse_hours(hours))
    click.echo(json.dumps(site["opening_hours"]))


def _parse_hours(text: str) -> Any:
    if text == "24/7":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise click.BadParameter('JSON, e.g. {"mon": [["09:00", "19:00"]]}, or "24/7"') from None


@site_group.command("list")
def site_list() -> None:
    """Every site with its occupancy."""
    for site in site_search.list_sites(ctx(), SYSTEM):
        click.echo(f"{site['id']:>4} {site['code']:<20} {site['kind']:<6} "
                   f"{site['held']:>4}/{site['capacity']:<4} {site['status']:<9} {site['name']}")


@click.group("locker", cls=ReportDomainErrors)
def locker_group() -> None:
    """Automatic lockers: registration, doors, status."""


@locker_group.command("register")
@click.option("--code", required=True, help="also the locker's MQTT id")
@click.option("--name", required=True)
@click.option("--model", "locker_model", required=True, help="a key of LOCKER_MODELS")
@click.option("--address", required=True)
@click.option("--postcode", required=True)
@click.option("--city", required=True)
@click.option("--lat", "latitude", type=float, required=True)
@click.option("--lon", "longitude", type=float, required=True)
@click.option("--area", type=click.Choice(["town", "countryside"]), default="countryside")
def locker_register(**fields: Any) -> None:
    """Register a locker with the compartments of its model."""
    view = locker_registry.register_locker(ctx(), SYSTEM, fields)
    click.echo(f"locker {view['code']} (site {view['id']}): {len(view['compartments'])} "
               "compartments")


def _locker_id(code: str) -> int:
    return sites.site_id_for_code(ctx(), code)


@locker_group.command("service")
@click.argument("code")
@click.argument("number", type=int)
@click.option("--out", "reason", default=None, help="take it out of service, for this reason")
def locker_service(code: str, number: int, reason: str | None) -> None:
    """Put compartment NUMBER of locker CODE back in service (or --out "reason")."""
    view = locker_registry.set_compartment_service(ctx(), SYSTEM, _locker_id(code), number,
                                           in_service=reason is None, reason=reason)
    click.echo(f"compartment {number}: {view['state']}")


@locker_group.command("show")
@click.argument("code")
def locker_show(code: str) -> None:
    """The locker's link, doors and open alerts, as JSON."""
    click.echo(json.dumps(locker_views.locker_view(ctx(), SYSTEM, _locker_id(code)), indent=2))


@locker_group.command("provision")
@click.argument("code")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="where to write the bundle (mode 0600); install it on the locker")
@click.option("--broker-url", default=None, help="e.g. mqtts://broker.example.org:8883")
@click.option("--ca", "ca_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="the deployment CA certificate the locker trusts")
def locker_provision(code: str, out: Path, broker_url: str | None, ca_file: Path | None
                     ) -> None:
    """Give locker CODE a new identity and write its bundle; the previous one stops working.
    Then write the broker's password file again (`relay-ops broker passwd`)."""
    ca = ca_file.read_text() if ca_file else _configured_ca()
    bundle = locker_identity.provision(ctx(), SYSTEM, _locker_id(code), broker_url=broker_url,
                                       ca_cert=ca)
    write_bundle(out, bundle)
    click.echo(f"locker {code}: identity {bundle['generation']} written to {out}; "
               f"broker {bundle['broker']['url']} as {bundle['broker']['username']}")


def _configured_ca() -> str | None:
    path = current_app.config.get("LOCKER_BROKER_CA_FILE")
    return Path(path).read_text() if path else None


@locker_group.command("revoke")
@click.argument("code")
def locker_revoke(code: str) -> None:
    """Stop trusting locker CODE (stolen, replaced): its events are refused from now on.
    Then write the broker's password file again and reload the broker."""
    answer = locker_identity.revoke(ctx(), SYSTEM, _locker_id(code))
    click.echo(f"locker {code} revoked at {answer['revoked_at']}")


@locker_group.command("sweep")
def locker_sweep() -> None:
    """Time out idle drop-off sessions and release their reservations."""
    click.echo(f"{locker_dropoff.expire_stale_reservations(ctx())} compartment(s) released")


@click.group("carrier", cls=ReportDomainErrors)
def carrier_group() -> None:
    """Carriers and their API keys."""


@carrier_group.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--reroute", type=click.Choice(["confirm", "automatic"]), default="confirm")
def carrier_create(code: str, name: str, reroute: str) -> None:
    """Register a carrier."""
    accounts.create_carrier(ctx(), SYSTEM, code=code, name=name, reroute_policy=reroute)
    click.echo(f"carrier {code} created")


@carrier_group.command("key")
@click.argument("code")
@click.option("--label", default="")
def carrier_key(code: str, label: str) -> None:
    """Issue an API key for carrier CODE; it is printed once and never stored."""
    click.echo(accounts.issue_carrier_key(ctx(), SYSTEM, code, label).token)


@click.group("producer", cls=ReportDomainErrors)
def producer_group() -> None:
    """Local producers (short circuits) and their API keys."""


@producer_group.command("create")
@click.argument("code")
@click.argument("name")
def producer_create(code: str, name: str) -> None:
    """Register a producer whose customers collect their orders at a shop."""
    producers.create_producer(ctx(), SYSTEM, code=code, name=name)
    click.echo(f"producer {code} created")


@producer_group.command("key")
@click.argument("code")
@click.option("--label", default="")
def producer_key(code: str, label: str) -> None:
    """Issue an API key for producer CODE; it is printed once and never stored."""
    click.echo(producers.issue_producer_key(ctx(), SYSTEM, code, label).token)


@click.group("user", cls=ReportDomainErrors)
def user_group() -> None:
    """Staff accounts."""


@user_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["operator", "shopkeeper"]), required=True)
@click.option("--site", "site_codes", multiple=True, help="a shop the shopkeeper runs")
@click.option("--name", "display_name", default="")
@click.option("--locale", type=click.Choice(["fr", "en"]), default="fr")
@click.password_option()
def user_create(username: str, role: str, site_codes: tuple[str, ...], display_name: str,
                locale: str, password: str) -> None:
    """Create a staff account (the password is asked for)."""
    accounts.create_user(
        ctx(), SYSTEM, username=username, password=password, role=role,
        display_name=display_name, site_codes=list(site_codes), locale=locale,
    )
    click.echo(f"{role} {username} created")


@user_group.command("deactivate")
@click.argument("username")
def user_deactivate(username: str) -> None:
    """Deactivate a staff account: every token it holds stops working at once."""
    accounts.set_active(ctx(), SYSTEM, accounts.user_id_for_username(ctx(), username), False)
    click.echo(f"{username} deactivated; its tokens are revoked")


@user_group.command("activate")
@click.argument("username")
def user_activate(username: str) -> None:
    """Let a deactivated staff account sign in again (its old tokens stay revoked)."""
    accounts.set_active(ctx(), SYSTEM, accounts.user_id_for_username(ctx(), username), True)
    click.echo(f"{username} may sign in again")


@user_group.command("revoke-tokens")
@click.argument("username")
def user_revoke_tokens(username: str) -> None:
    """Sign a staff account out everywhere; it stays active."""
    user_id = accounts.user_id_for_username(ctx(), username)
    revoked = accounts.revoke_user_tokens(ctx(), SYSTEM, user_id)
    click.echo(f"{revoked} token(s) of {username} revoked")


@click.command("sweep-expiry")
@with_appcontext
def sweep_expiry() -> None:
    """Move parcels past their holding deadline to 'expired'."""
    expired = expiry.expire_overdue(ctx())
    click.echo(f"{len(expired)} parcel(s) expired")


@click.command("forecast")
@with_appcontext
def forecast_command() -> None:
    """Recompute every site's occupancy forecast (what the scheduler runs nightly)."""
    from relay_ops.services.forecast_sweep import forecast_all

    done = forecast_all(ctx())
    click.echo(f"{done['sites']} site(s) forecast, {done['days_at_risk']} day(s) at risk"
               + (f", {done['failed']} failed (logged)" if done["failed"] else ""))


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--seed-only", is_flag=True, help="create the demo data and exit")
@click.option("--no-locker", is_flag=True, help="without the embedded MQTT broker and locker")
@click.option("--board", type=click.Choice(["simulated", "kerong-emulated"]), default="simulated",
              show_default=True, help="the demo locker's doors: in memory, or emulated KR-CU16 "
              "boards driven by the real driver over a pseudo-terminal")
@with_appcontext
def demo(host: str, port: int, seed_only: bool, no_locker: bool, board: str) -> None:
    """Run RelayOps on its embedded defaults with demo data."""
    from relay_ops import demo as demo_module

    _links_to_this_server(host, port)
    migrate.upgrade(ctx().db.engine)
    demo_module.seed(ctx())
    if seed_only:
        click.echo("demo data ready")
        return
    # The demo's metrics answer a token of its own, printed below, unless one is configured.
    current_app.config["METRICS_TOKEN"] = (current_app.config["METRICS_TOKEN"]
                                           or demo_module.METRICS_TOKEN)
    demo_module.print_welcome(ctx(), host, port, current_app.config["NOTIFY_FILE_PATH"],
                              current_app.config["METRICS_TOKEN"])
    embedded = _start_demo_locker(not no_locker, f"http://{host}:{port}", board)
    try:
        demo_module.serve(current_app._get_current_object(), host, port)  # type: ignore[attr-defined]
    finally:
        if embedded is not None:
            embedded.stop()


def _links_to_this_server(host: str, port: int) -> None:
    """The links in the demo's messages (SMS, e-mail) point at the demo itself, on whatever
    port it runs, unless PUBLIC_BASE_URL was set on purpose."""
    from relay_ops.settings import DEFAULTS

    if current_app.config["PUBLIC_BASE_URL"] != DEFAULTS["PUBLIC_BASE_URL"]:
        return
    base = f"http://{host}:{port}"
    current_app.config["PUBLIC_BASE_URL"] = base
    current = ctx()
    current_app.extensions["relay_ops"] = dataclasses.replace(
        current, settings=dataclasses.replace(current.settings, public_base_url=base)
    )


def _start_demo_locker(enabled: bool, base: str, board: str = "simulated") -> Any:
    """The demo's locker stack: broker, bridge and simulated locker, in this process. This
    command is the one place that puts relay_ops and firmware_bridge together in a process."""
    if not enabled:
        return None
    import hashlib
    import sys
    from pathlib import Path

    from relay_ops import demo as demo_module

    try:
        from firmware_bridge.embedded import EmbeddedLockers
    except ImportError as error:  # amqtt missing: the shops' demo still runs
        click.echo(f"(no demo locker: {error})")
        return None
    # one journal per database: a fresh demo database gets a fresh locker
    database = hashlib.sha256(current_app.config["DATABASE_URL"].encode()).hexdigest()[:12]
    embedded = EmbeddedLockers(ctx(), demo_module.LOCKER["code"], 6,
                               Path(current_app.instance_path) / "demo-locker" / database,
                               port=int(current_app.config["DEMO_MQTT_PORT"]),
                               board=board)
    embedded.start()
    if embedded.bridge is not None:  # its figures on the demo's /metrics
        from relay_ops.metrics import BridgeCollector, web_registry

        web_registry(current_app).register(BridgeCollector(embedded.bridge))
    click.echo(f"demo locker doors: {embedded.board_description()}")
    click.echo(f"demo MQTT broker: 127.0.0.1:{embedded.broker.port}, anonymous and on this "
               "machine only (production: TLS and a login per locker, docs/locker-protocol.md "
               "section 12); the demo locker is provisioned and obeys only signed commands")
    from relay_ops.web.pages.locker_panel import attach_simulated_locker

    # the locker panel drives this locker; the demo opens it without signing in (not in production)
    attach_simulated_locker(current_app, embedded)
    current_app.config["LOCKER_PANEL_DEMO"] = True
    if embedded.wait_until(lambda: locker_views.locker_view(
            ctx(), SYSTEM, demo_module.lockers_site_id(ctx())
    )["link"]["credential_version_held"] is not None, 15):
        demo_module.stock_locker(ctx(), embedded)
    demo_module.print_locker_welcome(ctx(), base)
    embedded.console(sys.stdin, sys.stdout)
    return embedded


@click.command("run-jobs")
@click.option("--once", is_flag=True, help="run the due jobs once and exit")
@with_appcontext
def run_jobs(once: bool) -> None:
    """Run queued jobs in this process (without Redis)."""
    from relay_ops import outbox, runner_lock
    from relay_ops.jobs import InProcessRunner, handlers

    if once:
        done = outbox.run_pending_jobs(ctx().db, handlers(ctx(), current_app.config), ctx().now)
        click.echo(f"{done} job(s) done")
        return
    # The web's runners (under gunicorn) take the same lock: one runs at a time.
    runner = InProcessRunner(ctx(), current_app.config,
                             lock=runner_lock.for_database(ctx().db))
    runner.start()
    try:
        runner.join()
    except KeyboardInterrupt:
        runner.stop()


@click.command("sweep")
@click.argument("name")
@with_appcontext
def sweep(name: str) -> None:
    """Run one periodic sweep now (expiry, reminders, personal-data-purge...)."""
    from relay_ops import jobs

    if name not in jobs.active_sweeps():
        choices = ', '.join(jobs.active_sweeps())
        raise click.BadParameter(f"choose from {choices}", param_hint="NAME")
    click.echo(f"{name}: {jobs.run_sweep(ctx(), current_app.config, name)}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="exit when the queues are empty")
@click.option("--name", default=None, help="the worker's name in RQ (default: host and pid)")
@metrics_options("WORKER")
@with_appcontext
def worker(burst: bool, name: str | None, metrics_port: int | None,
           metrics_address: str) -> None:
    """Run an RQ worker on RelayOps' queues (production; JOBS_IN_PROCESS=false).

    It runs the jobs in its own process (no fork per job: docs/decisions/0005) and RQ's
    scheduler for retries with backoff. Run as many as needed, and one `relay-ops scheduler`.
    It waits out Redis outages; SIGTERM stops it (after the job it runs).
    """
    from relay_ops.worker import runtime
    from relay_ops.worker.supervise import children_die_with_this_process, run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    runtime.use(app)
    if metrics_port is not None:
        from relay_ops.metrics import serve_job_metrics

        serve_job_metrics(metrics_port, metrics_address)
        click.echo(f"metrics on http://{metrics_address}:{metrics_port}/metrics")
    children_die_with_this_process()
    run_worker(app.config, burst=burst, name=name)


@click.command("scheduler")
@click.option("--tick", default=1.0, show_default=True, help="seconds between outbox scans")
@with_appcontext
def scheduler(tick: float) -> None:
    """Relay committed outbox rows to RQ and enqueue the periodic sweeps (production).

    One is active at a time (a lock in Redis); a second one waits as a standby.
    """
    import signal

    from relay_ops.worker.config import connect
    from relay_ops.worker.scheduler import Scheduler

    loop = Scheduler(ctx(), current_app.config, connect(current_app.config), tick_s=tick)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: loop.stop())
    loop.run()


@click.command("bridge")
@click.option("--broker", default=None, help="host:port (default: MQTT_HOST/MQTT_PORT)")
@click.option("--no-shared", is_flag=True,
              help="plain subscription, for brokers without $share (one bridge only)")
@click.option("--resend-after", default=5.0, show_default=True,
              help="seconds before a command the locker has not answered goes out again")
@click.option("--log-level", default="INFO", show_default=True)
@metrics_options("BRIDGE")
@with_appcontext
def bridge(broker: str | None, no_shared: bool, resend_after: float, log_level: str,
           metrics_port: int | None, metrics_address: str) -> None:
    """Run the MQTT bridge: locker events in, service calls, commands out (production; also
    the console script `relayops-bridge`). The bridge gets the services' context from here:
    firmware_bridge never builds the app. SIGTERM stops it."""
    import logging
    import signal
    import threading

    from firmware_bridge.bridge import Bridge, BridgeSettings, broker_login

    logging.getLogger().setLevel(log_level)
    config = current_app.config
    host, port = config["MQTT_HOST"], int(config["MQTT_PORT"])
    if broker:
        host, _, port_text = broker.rpartition(":")
        port = int(port_text)
    settings = BridgeSettings(
        shared_subscription=config["MQTT_SHARED_SUBSCRIPTION"] and not no_shared,
        share_group=config["MQTT_SHARE_GROUP"],
        client_id_prefix=config["MQTT_CLIENT_ID_PREFIX"], resend_after_s=resend_after,
    )
    login = broker_login(config, host or "127.0.0.1", port)
    running = Bridge(ctx(), login.host, login.port, settings, login)
    if metrics_port is not None:
        from relay_ops.metrics import serve_bridge_metrics

        serve_bridge_metrics(running, metrics_port, metrics_address)
        click.echo(f"metrics on http://{metrics_address}:{metrics_port}/metrics")
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    running.start()
    click.echo("bridge started")
    done.wait()
    running.stop()


@click.group("jobs", cls=ReportDomainErrors)
def jobs_group() -> None:
    """Background jobs: queues, failures, retries."""


def _redis() -> Any:
    from relay_ops.worker.config import redis_of

    return redis_of(current_app._get_current_object())  # type: ignore[attr-defined]


@jobs_group.command("status")
def jobs_status() -> None:
    """Queues, registries and the outbox backlog."""
    from relay_ops.worker import admin

    click.echo(json.dumps(admin.overview(ctx(), SYSTEM, current_app.config, _redis()), indent=2))


@jobs_group.command("failed")
@click.option("--limit", default=50, show_default=True)
def jobs_failed(limit: int) -> None:
    """Failed jobs and their errors."""
    from relay_ops.worker import admin

    items = admin.failed(ctx(), SYSTEM, current_app.config, _redis(), limit)
    for item in items:
        click.echo(f"{item['id']}  {item['queue']}  {item['function']} {item['args']}\n"
                   f"    {item['error']}")
    click.echo(f"{len(items)} failed job(s)")


@jobs_group.command("retry")
@click.argument("job_id")
def jobs_retry(job_id: str) -> None:
    """Run failed job JOB_ID again."""
    from relay_ops.worker import admin

    admin.retry(ctx(), SYSTEM, current_app.config, _redis(), job_id)
    click.echo(f"{job_id} queued again")


@click.group("broker", cls=ReportDomainErrors)
def broker_group() -> None:
    """The MQTT broker's files for production (config/mosquitto/production.conf)."""


@broker_group.command("certs")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--host", "hosts", multiple=True, required=True,
              help="the broker's DNS name or IP as lockers reach it (repeatable)")
def broker_certs(out: Path, hosts: tuple[str, ...]) -> None:
    """A deployment CA and the broker's certificate: ca.crt, ca.key, server.crt, server.key.
    Keep ca.key offline; lockers get ca.crt in their bundle."""
    for path in write_deployment_certs(out, list(hosts), ctx().now()):
        click.echo(f"wrote {path}")


@broker_group.command("passwd")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--bridge-username", default=None, help="default: MQTT_USERNAME")
@click.option("--bridge-password-env", default="RELAY_OPS_MQTT_PASSWORD", show_default=True,
              help="the environment variable holding the bridge's password")
def broker_passwd(out: Path, bridge_username: str | None, bridge_password_env: str) -> None:
    """Mosquitto's password file: every provisioned locker not revoked, and the bridge.
    Send the broker SIGHUP afterwards to load it."""
    username = bridge_username or current_app.config.get("MQTT_USERNAME")
    password = os.environ.get(bridge_password_env) or current_app.config.get("MQTT_PASSWORD")
    extra = [(username, password)] if username and password else []
    text = locker_identity.password_file(ctx(), extra)
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    click.echo(f"{len(text.splitlines())} login(s) written to {out}")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_group, "db")
    app.cli.add_command(jobs_group, "jobs")
    app.cli.add_command(broker_group, "broker")
    app.cli.add_command(demand_index_group)
    for command in (site_group, locker_group, carrier_group, producer_group, user_group,
                    sweep_expiry, sweep, forecast_command, run_jobs, worker, scheduler, bridge,
                    demo):
        app.cli.add_command(command)


def create_operator_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The app with the operator commands on its `app.cli`: what `relay-ops` runs."""
    from relay_ops import create_app

    app = create_app(test_config)
    init_app(app)
    return app


def _create_app() -> Flask:
    return create_operator_app()


def main() -> None:
    FlaskGroup(create_app=_create_app, add_default_commands=False,
               help="RelayOps operations.")(prog_name="relay-ops")


def bridge_main() -> None:
    """The console script `relayops-bridge [--broker HOST:PORT] [--no-shared]`."""
    import sys

    FlaskGroup(create_app=_create_app, add_default_commands=False)(
        args=["bridge", *sys.argv[1:]], prog_name="relayops-bridge")


if __name__ == "__main__":
    main()
