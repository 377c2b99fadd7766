"""Certificates: the load balancer's client-certificate rules applied before anything is built (lint),
and the demo PKI the sandbox and the labs use."""
