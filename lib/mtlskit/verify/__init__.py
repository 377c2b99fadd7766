"""Verification of what was built: real mTLS requests, the load balancer's request logs matched with
them, and drift between the two owners of the load balancer. A new check of a built stack goes here."""
