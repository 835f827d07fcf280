"""Mask parametrizations: pure functions from latent parameters to a mask pytree."""
