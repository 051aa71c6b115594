"""The error raised for bad scores tables and impossible metrics."""

from core.errors import ExplorerError


class MetricsError(ExplorerError):
    """A scores table or a metric request that cannot be computed; the message names the file/column."""
