"""Rules of the Google and Kubernetes APIs that both the kit and the sandbox apply.

The kit checks a params file against them before it calls anything, and the sandbox refuses the same
requests the real APIs would; stating each rule once keeps the two from drifting apart.
"""
