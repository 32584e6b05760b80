"""The hosted checkout page both fakes show: what is bought, a "Pay" button, a cancel link."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
.box{{border:1px solid #ccc;border-radius:8px;padding:1.5rem}}button{{font-size:1.1rem;
padding:.6rem 2rem;border:0;border-radius:6px;background:{color};color:#fff;cursor:pointer}}
.fake{{color:#a00;font-size:.85rem}}</style></head>
<body><div class="box"><p class="fake">{provider} (fake, for local development)</p>
<h1>{title}</h1><p>{description}</p><p><strong>{amount}</strong></p>{body}</div></body></html>"""


def checkout_page(
    *, provider: str, color: str, title: str, description: str, amount: str,
    pay_action: str | None, cancel_url: str | None, state: str,
) -> str:  # fmt: skip
    if pay_action is None:
        body = f'<p id="state">This checkout is {escape(state)}.</p>'
    else:
        cancel = f' <a href="{escape(cancel_url)}">Cancel</a>' if cancel_url else ""
        body = (f'<form method="post" action="{escape(pay_action)}">'
                f'<button id="pay" type="submit">Pay</button>{cancel}</form>')  # fmt: skip
    return _PAGE.format(
        provider=escape(provider), color=color, title=escape(title),
        description=escape(description), amount=escape(amount), body=body,
    )  # fmt: skip


def return_page(outcome: str) -> str:
    """Where the local stack sends the payer back (there is no dashboard to land on yet)."""
    text = {
        "success": "Paid. The fake sent the signed webhook; the quota is credited "
        "(GET /api/v1/developers/me).",
        "cancel": "Checkout cancelled; nothing was charged.",
    }.get(outcome, "Back at AgentLink.")
    return _PAGE.format(provider="AgentLink (local stack)", color="#333", title=outcome.title(),
                        description=text, amount="", body="")  # fmt: skip
