"""Use cases: one function per thing a user does, one transaction each.

Every entry point (Flask views, CLI commands, RQ jobs, the MQTT bridge) calls these; none of
them writes a rule of its own.
"""
