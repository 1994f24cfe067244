"""The error a call outside the supported wandb API raises, naming it and what is supported."""

from __future__ import annotations

from collections.abc import Iterable

from telemetry.errors import TelemetryError


class UnsupportedAPIError(TelemetryError, AttributeError):
    """A wandb API this package does not provide; never a silent no-op.

    An ``AttributeError`` too, so ``hasattr`` and ``from telemetry import <submodule>``
    behave as for any missing attribute.
    """


def unsupported(what: str, supported: Iterable[str]) -> UnsupportedAPIError:
    """The error for ``what`` (``wandb.watch``, ``run.use_artifact``), listing what is supported."""
    return UnsupportedAPIError(
        f"{what} is not supported by telemetry's wandb-compatible API; "
        f"supported: {', '.join(sorted(supported))}"
    )
