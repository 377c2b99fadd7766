"""Day-2 changes to a running frontend: client-CA rotation, partner certificates, enforcing mTLS,
and break-glass, each one gated, proven and recorded, with a way back.

A change to a trust config or a validation mode is the riskiest moment of an mTLS frontend: a
client that worked yesterday is refused today. Every change here moves the live trust state (the
trust config's certificates, the server TLS policy's mode, whether the proxy names the policy)
toward a target state in steps: an impact report from the request logs says who would be refused,
a gate refuses the step when a client accepted today would be, the step is applied in place, the
runbook waits until the load balancer applies it (a new connection, not a kept-alive one, shows the
new verdict), proves every known client's verdict, and writes a record with the state saved before
it, which is the way back. This layer sits above verification (its proofs are probes and logs) and
the runner (its waits show progress), beside the migration.
"""
