"""The design picture of whichever topology the params choose: notebooks ask for "the design" and
get the split load balancer or the Gateway one, drawn with their own names."""

from __future__ import annotations

from mtlskit.config.params import Params
from mtlskit.teach import diagram, gateway_diagram


def design_diagram(params: Params) -> diagram.Diagram:
    if params.topology == "gateway":
        return gateway_diagram.gateway_diagram(params)
    return diagram.design_diagram(params)
