"""A fast fake LLM provider (OpenAI, Anthropic and Gemini wire formats) for demos and tests.

``create_app()`` builds the ASGI app; ``python -m mock_provider`` or ``run()`` serves it.
"""

from mock_provider.app import MockProvider, create_app
from mock_provider.config import MockConfig
from mock_provider.server import run

__all__ = ["MockConfig", "MockProvider", "create_app", "run"]
