"""Compute Engine (global load-balancing resources) as the REST API behaves.

`resources` is the store API for Compute documents that the Ingress controller and the data plane
share with the HTTP handler; `handler` serves the REST collections; the rules of each resource live
in `certificates`, `routing` and `backends`, and `operations` answers for every mutation.
"""
