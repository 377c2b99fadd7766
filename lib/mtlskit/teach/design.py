"""The design picture of whichever topology the params choose: notebooks ask for "the design" and
get the split load balancer or the Gateway one, drawn with their own names; and the other topology's
picture with the same names, so a team sees what its stack would become (or was) before moving."""

from __future__ import annotations

from mtlskit.config.params import Params
from mtlskit.teach import diagram, gateway_diagram


def design_diagram(params: Params) -> diagram.Diagram:
    if params.topology == "gateway":
        return gateway_diagram.gateway_diagram(params)
    return diagram.design_diagram(params)


def other_topology_diagram(params: Params) -> diagram.Diagram:
    """The same params drawn in the other topology (split ↔ gateway). Only a picture: params a Gateway
    cannot carry (allowlisted certificates, ALLOW mode) are refused when they are loaded as a gateway
    topology, not here."""
    other = "split" if params.topology == "gateway" else "gateway"
    return design_diagram(params.model_copy(update={"topology": other}))
