"""Moving a live split frontend to a GKE Gateway, one gated phase at a time.

The split design (anchor Ingress + the kit's frontend) and the Gateway topology can run side by side on
two IPs; clients move by DNS. This layer sits above verification because every gate is a
verification result (probes on the new IP, a name that resolves, request logs that drain), and above
the runner so a notebook's waits show progress. It builds nothing itself: the Gateway comes from the
Gateway topology's build, the record change from the DNS cut-over, the retirement from teardown.
"""
