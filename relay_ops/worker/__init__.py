"""RelayOps on RQ: the outbox relay, the functions RQ workers run, the scheduler of periodic
sweeps, and the operators' view of the queues.

``relay-ops worker`` runs RQ workers; ``relay-ops scheduler`` moves committed outbox rows to
RQ and enqueues the periodic sweeps. See docs/decisions/0001-job-scheduling.md.
"""
