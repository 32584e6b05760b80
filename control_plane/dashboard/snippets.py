"""Ready-to-copy code that calls an agent through the real gateway endpoint.

The base URL is the public gateway (DASHBOARD_GATEWAY_PUBLIC_URL); the key is a placeholder
the developer replaces with one of their own (keys are shown once, never stored).
"""

from __future__ import annotations

from dataclasses import dataclass

KEY_PLACEHOLDER = "ak_your_api_key"


@dataclass(frozen=True, slots=True)
class Snippet:
    id: str
    label: str
    code: str


def agent_endpoint(gateway_url: str, agent_id: str) -> str:
    return f"{gateway_url}/proxy/v1/agents/{agent_id}"


def for_agent(gateway_url: str, agent_id: str) -> list[Snippet]:
    base = agent_endpoint(gateway_url, agent_id)
    curl = (
        f"curl -s {base}/chat \\\n"
        f"  -H 'X-AgentLink-Key: {KEY_PLACEHOLDER}' \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        '  -d \'{"messages": [{"role": "user", "content": "Hello!"}]}\''
    )
    python = (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base}", api_key="{KEY_PLACEHOLDER}")\n'
        "reply = client.chat.completions.create(\n"
        '    model="agent",  # the agent decides the model\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    javascript = (
        'import OpenAI from "openai";\n\n'
        "const client = new OpenAI({\n"
        f'  baseURL: "{base}",\n'
        f'  apiKey: "{KEY_PLACEHOLDER}",\n'
        "});\n"
        "const reply = await client.chat.completions.create({\n"
        '  model: "agent",\n'
        '  messages: [{ role: "user", content: "Hello!" }],\n'
        "});\n"
        "console.log(reply.choices[0].message.content);"
    )
    return [
        Snippet("snippet-curl", "curl", curl),
        Snippet("snippet-python", "Python (OpenAI SDK)", python),
        Snippet("snippet-js", "JavaScript (OpenAI SDK)", javascript),
    ]
