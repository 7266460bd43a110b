"""Shared pytest fixtures."""
import pytest


@pytest.fixture(scope="module", autouse=True)
def _unshadow_dsl_layers():
    """Importing the netspec.layers package (the layer registry) sets the attribute ``netspec.layers``
    to it, hiding netspec's lazy DSL export of the same name (``from netspec import layers as L``) for
    later test modules; undo that after each module."""
    yield
    import netspec
    if getattr(netspec.__dict__.get("layers"), "__path__", None) is not None:
        del netspec.__dict__["layers"]
