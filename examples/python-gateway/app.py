"""A payments API behind Greenlight: Starlette with the ASGI middleware.

    GREENLIGHT_WASM=greenlight.wasm GREENLIGHT_SERVICE_URL=http://127.0.0.1:8080 \
        uvicorn --factory app:create_app --port 8000

The app itself never checks a token: by the time a request reaches it,
Greenlight has allowed it, and `x-greenlight-subject` says for whom.
"""

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from greenlight.asgi import GreenlightMiddleware

#: The demo bundle of this repository.
BUNDLE = Path(__file__).resolve().parents[1] / "bundle"


async def get_payment(request: Request) -> JSONResponse:
    """`GET /payments/{payment_id}`."""
    return JSONResponse({
        "id": request.path_params["payment_id"],
        "status": "settled",
        "viewer": request.headers["x-greenlight-subject"],
    })


async def refund(request: Request) -> JSONResponse:
    """`POST /payments/{payment_id}/refund` with `{"amount", "currency"}`."""
    body = await request.json()
    return JSONResponse({
        "refunded": request.path_params["payment_id"],
        "amount": body["amount"],
        "currency": body["currency"],
        "by": request.headers["x-greenlight-subject"],
        "approval": request.headers.get("x-greenlight-approval"),
    })


def create_app(service_url: "str | None" = None, wasm_path: "str | None" = None,
               bundle_dir: "str | Path | None" = None) -> GreenlightMiddleware:
    """The API wrapped in Greenlight. Defaults come from GREENLIGHT_SERVICE_URL,
    GREENLIGHT_WASM and GREENLIGHT_BUNDLE (else the demo bundle)."""
    api = Starlette(routes=[
        Route("/payments/{payment_id}", get_payment, methods=["GET"]),
        Route("/payments/{payment_id}/refund", refund, methods=["POST"]),
    ])
    return GreenlightMiddleware(
        api,
        bundle_dir=bundle_dir or os.environ.get("GREENLIGHT_BUNDLE", BUNDLE),
        service_url=service_url or os.environ["GREENLIGHT_SERVICE_URL"],
        wasm_path=wasm_path,
    )
