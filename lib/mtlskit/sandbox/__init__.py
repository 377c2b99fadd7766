"""The embedded sandbox: a local Google Cloud + Kubernetes that the official clients talk to over HTTP.

The kit never imports the emulators; it only starts the server through `mtlskit.sandbox.process`.
"""
