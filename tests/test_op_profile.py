"""benchmarks.op_profile names every op of a compiled program by the network part it belongs to."""

import jax
import jax.numpy as jnp

from benchmarks.op_profile import instruction_scopes, profile
from jaxprune.graphs import SBU_BONES
from jaxprune.models import gcn


def test_ops_are_named_by_the_scopes_of_the_network():
    config = gcn.GCNConfig(num_nodes=30, num_features=6, num_classes=4, edges=SBU_BONES, channels=4, hidden=8,
                           num_blocks=1)   # one block: 6 s alone, 12 s with three (the per-pair backward compiles)
    params = gcn.init(jax.random.key(0), config)
    x = jnp.ones((8, 30, 6))
    compiled = jax.jit(jax.grad(lambda p: jnp.sum(gcn.apply(p, x, config) ** 2))).lower(params).compile()
    labels = instruction_scopes(compiled.as_text())
    seen = {part for label in labels.values() for part in label.split("+")}
    assert {"attention", "graph_conv", "fc", "classifier"} <= seen       # forward and backward ops alike
    by_scope, top = profile(compiled, lambda: (params,), calls=2)
    assert by_scope and all(ms >= 0 for ms in by_scope.values())
    assert {part for label in by_scope for part in label.split("+")} & {"attention", "graph_conv"}
    assert top and all(op in labels for op, _, _ in top)
