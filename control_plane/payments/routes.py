"""Payment routes: path → handler. Packages and the two webhooks are public (the webhooks
authenticate by signature); checkout and history are for developers; the admin routes need
`payments:manage`."""

from __future__ import annotations

from starlette.responses import Response

from common.domain import UserType
from control_plane.api import Context, RouteGroup, json_response
from control_plane.auth.principal import Permission
from control_plane.payments import admin, service
from control_plane.payments.schemas import (
    AdminPaymentDetail,
    AdminPaymentPage,
    AdminPaymentQuery,
    CheckoutBody,
    HistoryQuery,
    ManualCreditBody,
    ManualCreditOut,
    PackageList,
    PaymentOut,
    PaymentPage,
    RefundBody,
    RefundOut,
    WebhookAck,
)


async def list_packages(context: Context) -> PackageList:
    return service.packages(context.state)


async def create_checkout(context: Context, body: CheckoutBody) -> Response:
    created = await service.checkout(context.state, context.user, body)
    return json_response(created, 201, headers={"Cache-Control": "no-store"})


async def payment_history(context: Context, query: HistoryQuery) -> PaymentPage:
    return await service.history(context.state, context.user, query)


async def get_payment(context: Context) -> PaymentOut:
    return await service.detail(context.state, context.user, context.path["payment_id"])


async def stripe_webhook(context: Context) -> WebhookAck:
    return await service.receive_webhook(context.state, context.request, "stripe")


async def coinbase_webhook(context: Context) -> WebhookAck:
    return await service.receive_webhook(context.state, context.request, "coinbase")


async def admin_list_payments(context: Context, query: AdminPaymentQuery) -> AdminPaymentPage:
    return await admin.list_payments(context.state, query)


async def admin_get_payment(context: Context) -> AdminPaymentDetail:
    return await admin.payment_detail(context.state, context.path["payment_id"])


async def admin_refund_payment(context: Context, body: RefundBody) -> RefundOut:
    return await admin.refund(
        context.state, context.user, context.path["payment_id"], body, context.client_ip
    )


async def admin_credit_quota(context: Context, body: ManualCreditBody) -> ManualCreditOut:
    return await admin.manual_credit(
        context.state, context.user, context.path["user_id"], body, context.client_ip
    )


PREFIX = "/api/v1/payments"
_ANYONE = RouteGroup(PREFIX, frozenset(UserType), "payments")
_DEVELOPER = RouteGroup(PREFIX, frozenset({UserType.DEVELOPER}), "payments")
_ADMIN = RouteGroup("/api/v1/admin", frozenset({UserType.ADMIN}), "admin")
_MANAGE = Permission.MANAGE_PAYMENTS

# Fixed paths before `{payment_id}`, which would match them too.
# A provider's event: 400 for a bad signature or an unconfigured provider, 413 over the limit.
_SIGNED = (400, 413)

ROUTES = [
    _ANYONE.route("GET", "/packages", list_packages,
                  "Quota packages on sale, and the payment providers configured",
                  response=PackageList),
    _DEVELOPER.route("POST", "/checkout", create_checkout,
                     "Start buying a package: a pending payment and the provider's hosted "
                     "checkout URL", body=CheckoutBody, response=PaymentOut, status=201),
    _DEVELOPER.route("GET", "/history", payment_history,
                     "The developer's payments, newest first", query=HistoryQuery,
                     response=PaymentPage),
    _ANYONE.route("POST", "/webhook/stripe", stripe_webhook,
                  "Stripe events (Stripe-Signature verified)", response=WebhookAck,
                  errors=_SIGNED),
    _ANYONE.route("POST", "/webhook/coinbase", coinbase_webhook,
                  "Coinbase Commerce events (X-CC-Webhook-Signature verified)",
                  response=WebhookAck, errors=_SIGNED),
    _DEVELOPER.route("GET", "/{payment_id}", get_payment, "One of the developer's payments",
                     response=PaymentOut),
    # Admin
    _ADMIN.route("GET", "/payments", admin_list_payments,
                 "List payments (status, provider, user, email, dates)", query=AdminPaymentQuery,
                 response=AdminPaymentPage, permission=_MANAGE),
    _ADMIN.route("GET", "/payments/{payment_id}", admin_get_payment,
                 "A payment with every event received about it", response=AdminPaymentDetail,
                 permission=_MANAGE),
    _ADMIN.route("POST", "/payments/{payment_id}/refund", admin_refund_payment,
                 "Refund (part of) a payment; its units are taken back (audited)",
                 body=RefundBody, response=RefundOut, permission=_MANAGE),
    _ADMIN.route("POST", "/users/{user_id}/quota-credits", admin_credit_quota,
                 "Credit quota units to a developer by hand (audited)", body=ManualCreditBody,
                 response=ManualCreditOut, permission=_MANAGE),
]  # fmt: skip
