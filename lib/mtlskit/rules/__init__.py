"""Rules of the Google and Kubernetes APIs that both the kit and the sandbox apply."""
