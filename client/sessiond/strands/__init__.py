"""sessiond for Strands Agents runtimes (``pip install sessiond[strands]``)."""

from sessiond.strands.session_manager import SessiondSessionManager

__all__ = ["SessiondSessionManager"]
