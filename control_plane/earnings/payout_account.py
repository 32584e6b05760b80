"""A creator's payout account: the Stripe Connect (Express) account their withdrawals by
`stripe` are transferred to. `POST` creates it (once) and returns Stripe's onboarding link;
`GET` says whether Stripe lets it receive transfers yet."""

from __future__ import annotations

import msgspec
import stripe

from common.errors import ApiError, ErrorCode
from control_plane.auth.principal import Principal
from control_plane.earnings.payouts.stripe_connect import account_status, connect_account
from control_plane.payments.settings import StripeSettings
from control_plane.state import ControlPlaneState


class PayoutAccount(msgspec.Struct):
    provider: str  # "stripe"
    account_id: str | None
    onboarding_url: str | None  # where the creator finishes Stripe's onboarding (POST only)
    details_submitted: bool
    payouts_enabled: bool


def _stripe(state: ControlPlaneState) -> StripeSettings:
    settings = state.settings.payments.stripe
    if settings is None or "stripe" not in state.settings.earnings.payout_providers:
        raise ApiError(ErrorCode.CONFLICT, "Payouts by Stripe are not offered here.")
    return settings


async def connect(state: ControlPlaneState, principal: Principal) -> PayoutAccount:
    settings = _stripe(state)
    row = await state.db.fetchrow(
        """SELECT u.email, p.stripe_account_id FROM users u
           JOIN creator_profiles p ON p.user_id = u.id WHERE u.id = $1""",
        principal.user_id,
    )
    if row is None:
        raise ApiError(ErrorCode.USER_NOT_FOUND, "No creator profile for this account.")
    timeout = state.settings.payments.provider_timeout_s
    try:
        # Idempotent per creator at Stripe: asking twice gets the same account, a new link.
        account_id, url = await connect_account(
            settings, email=row["email"], creator_id=principal.user_id,
            return_url=state.settings.payments.success_url, timeout_s=timeout,
        )  # fmt: skip
        status = await account_status(settings, account_id, timeout_s=timeout)
    except stripe.StripeError:
        raise ApiError(
            ErrorCode.UPSTREAM_UNAVAILABLE, "Stripe is unavailable; try again."
        ) from None
    await state.db.execute(
        "UPDATE creator_profiles SET stripe_account_id = $2 WHERE user_id = $1",
        principal.user_id,
        account_id,
    )
    return PayoutAccount("stripe", account_id, url, **status)


async def status(state: ControlPlaneState, principal: Principal) -> PayoutAccount:
    settings = _stripe(state)
    account_id = await state.db.fetchval(
        "SELECT stripe_account_id FROM creator_profiles WHERE user_id = $1", principal.user_id
    )
    if account_id is None:
        return PayoutAccount("stripe", None, None, False, False)
    try:
        found = await account_status(
            settings, account_id, timeout_s=state.settings.payments.provider_timeout_s
        )
    except stripe.StripeError:
        raise ApiError(
            ErrorCode.UPSTREAM_UNAVAILABLE, "Stripe is unavailable; try again."
        ) from None
    return PayoutAccount("stripe", account_id, None, **found)
