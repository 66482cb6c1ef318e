"""Twilio's REST API, through the official `twilio` SDK: place a call to the owner, send a text, read the account
and the Twilio number, and point the number's webhooks at TARS.

Credentials: TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or an API key pair (TWILIO_API_KEY_SID +
TWILIO_API_KEY_SECRET) for the account. Every request goes to TWILIO_API_BASE_URL (default Twilio's), so tests
drive the real SDK against a local stand-in of the API. Every failure becomes `PhoneUnavailable` with one sentence
naming the fix; core/ never imports this module.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from core.config import Settings
from core.exceptions import PhoneUnavailable

log = logging.getLogger("tars.phone")

TWILIO_API = "https://api.twilio.com"
REQUEST_TIMEOUT_SECONDS = 15.0
"""One REST request's timeout: placing a call or a text never holds a server thread longer."""

CALL_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
"""The call progress events Twilio reports to a placed call's status callback."""

AUTH_FAILED = 20003  # Twilio's error code for rejected credentials
NOT_FOUND = 20404


class _BaseUrlHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, sending what it would send to https://api.twilio.com to TWILIO_API_BASE_URL."""

    def __init__(self, base_url: str):
        super().__init__(timeout=REQUEST_TIMEOUT_SECONDS)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        if self.base_url != TWILIO_API and parts.netloc.endswith("twilio.com"):
            url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, url, *args, **kwargs)


def _page_refused(exc: Exception) -> TwilioRestException | None:
    """A list request Twilio refused, as the TwilioRestException the SDK raises for every other request: its list
    pages raise a bare TwilioException("Unable to fetch page", response) instead. None for anything else."""
    if isinstance(exc, TwilioRestException) or len(exc.args) != 2 or not isinstance(exc.args[1], Response):
        return None
    response: Response = exc.args[1]
    try:
        payload = json.loads(response.text)
    except ValueError:
        payload = None
    payload = payload if isinstance(payload, dict) else {}
    message = f"{exc.args[0]}: {payload['message']}" if payload.get("message") else str(exc.args[0])
    return TwilioRestException(response.status_code, "", message, payload.get("code", response.status_code), "GET")


@dataclass(frozen=True)
class TwilioNumber:
    """The Twilio number TARS uses, as the REST API describes it."""

    sid: str
    phone_number: str
    voice_url: str
    sms_url: str
    voice_method: str = "POST"
    sms_method: str = "POST"


class TwilioRest:
    """The REST API for one account (every method blocks: call it from a thread in async code)."""

    def __init__(self, settings: Settings):
        missing = [name for name in settings.phone_missing() if name != "OWNER_PHONE_NUMBERS"]
        if missing:
            raise PhoneUnavailable(f"TARS cannot call or text you: set {', '.join(missing)} in .env.")
        self.settings = settings
        self.account_sid: str = settings.TWILIO_ACCOUNT_SID  # type: ignore[assignment]
        self.number: str = settings.TWILIO_PHONE_NUMBER  # type: ignore[assignment]
        if settings.TWILIO_API_KEY_SID:
            username, password = settings.TWILIO_API_KEY_SID, settings.secret("TWILIO_API_KEY_SECRET")
            self.credentials = "TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET"
        else:
            username, password = self.account_sid, settings.secret("TWILIO_AUTH_TOKEN")
            self.credentials = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        self.client = Client(username, password, account_sid=self.account_sid,
                             http_client=_BaseUrlHttpClient(settings.TWILIO_API_BASE_URL))

    def _failed(self, doing: str, exc: Exception) -> PhoneUnavailable:
        """One sentence: what failed and how to fix it."""
        exc = _page_refused(exc) or exc
        if isinstance(exc, TwilioRestException):
            if exc.status == 401 or exc.code == AUTH_FAILED:
                why = f"Twilio refused the credentials: check {self.credentials} (the Twilio console shows them)"
            elif exc.status == 404 and doing.startswith(("read", "update")):
                why = (f"Twilio has no such resource ({exc.msg}): check TWILIO_ACCOUNT_SID and that "
                       f"TWILIO_PHONE_NUMBER is a number of that account")
            else:
                why = f"Twilio answered {exc.status}{f' (error {exc.code})' if exc.code else ''}: {exc.msg}"
        elif isinstance(exc, requests.RequestException):
            why = (f"Twilio's API could not be reached at {self.settings.TWILIO_API_BASE_URL} "
                   f"({exc.__class__.__name__}): check the network, or TWILIO_API_BASE_URL")
        else:
            why = f"the Twilio SDK failed: {exc}"
        return PhoneUnavailable(f"Could not {doing}: {why}.")

    # --- calls and texts ------------------------------------------------------------------------------------------
    def place_call(self, to: str, twiml: str, status_callback: str, ring_seconds: int) -> str:
        """Call `to` from the Twilio number; the call runs `twiml` when answered and reports its progress to
        `status_callback`. The call's SID."""
        try:
            call = self.client.calls.create(to=to, from_=self.number, twiml=twiml, timeout=ring_seconds,
                                            status_callback=status_callback, status_callback_method="POST",
                                            status_callback_event=CALL_STATUS_EVENTS)
        except (TwilioException, requests.RequestException) as exc:
            raise self._failed(f"call {to}", exc) from exc
        log.info("Calling %s (call %s)", to, call.sid)
        return call.sid

    def send_text(self, to: str, body: str) -> str:
        """Text `body` to `to` from the Twilio number; the message's SID."""
        try:
            message = self.client.messages.create(to=to, from_=self.number, body=body)
        except (TwilioException, requests.RequestException) as exc:
            raise self._failed(f"text {to}", exc) from exc
        log.info("Texted %s (message %s)", to, message.sid)
        return message.sid

    # --- the account and the number (python main_tars.py doctor) ------------------------------------------------
    def account_name(self) -> str:
        """The account's friendly name: proves the credentials work."""
        try:
            return self.client.api.v2010.accounts(self.account_sid).fetch().friendly_name or self.account_sid
        except (TwilioException, requests.RequestException) as exc:
            raise self._failed("read the Twilio account", exc) from exc

    def phone_number(self) -> TwilioNumber:
        """TWILIO_PHONE_NUMBER as the account holds it; PhoneUnavailable when the account has no such number."""
        try:  # Twilio's filter matches partial numbers too: only the number itself will do
            found = [number for number in self.client.incoming_phone_numbers.list(phone_number=self.number, limit=20)
                     if number.phone_number == self.number]
        except (TwilioException, requests.RequestException) as exc:
            raise self._failed("read the Twilio number", exc) from exc
        if not found:
            raise PhoneUnavailable(f"The Twilio account {self.account_sid} has no number {self.number}: set "
                                   f"TWILIO_PHONE_NUMBER to one of its numbers (Phone Numbers, Active numbers).")
        number = found[0]
        return TwilioNumber(number.sid, number.phone_number, number.voice_url or "", number.sms_url or "",
                            (number.voice_method or "POST").upper(), (number.sms_method or "POST").upper())

    def point_number(self, number_sid: str, voice_url: str, sms_url: str) -> TwilioNumber:
        """Set the number's incoming-call and incoming-text webhooks (POST)."""
        try:
            number = self.client.incoming_phone_numbers(number_sid).update(
                voice_url=voice_url, voice_method="POST", sms_url=sms_url, sms_method="POST")
        except (TwilioException, requests.RequestException) as exc:
            raise self._failed("update the Twilio number", exc) from exc
        return TwilioNumber(number.sid, number.phone_number, number.voice_url or "", number.sms_url or "",
                            (number.voice_method or "POST").upper(), (number.sms_method or "POST").upper())
