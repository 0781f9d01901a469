"""Identity API blueprint (ACS Identity data plane: /identities)."""
from __future__ import annotations

import azure.functions as func

from shared.identity.tokens import AccessToken, parse_expiry, parse_scopes
from shared.core.timefmt import format_acs

from .errors import IDENTITY_ERRORS
from .pipeline import IDENTITY_API, ApiRequest, ApiResponse, acs_operation

bp = func.Blueprint()
ANONYMOUS = func.AuthLevel.ANONYMOUS


def _token_json(token: AccessToken) -> dict:
    return {"token": token.token, "expiresOn": format_acs(token.expires_on)}


def _body(request: ApiRequest) -> dict:
    # No body at all is fine: the SDKs send none when no option is set. A JSON `null` is not.
    return request.json_object(allow_empty=True)


@bp.function_name("CreateIdentity")
@bp.route(route="identities", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("CreateIdentity", IDENTITY_API, IDENTITY_ERRORS)
def create_identity(request: ApiRequest) -> ApiResponse:
    body = _body(request)
    identity = request.services.identity
    scopes = body.get("createTokenWithScopes")
    token_request = None
    if scopes is not None:
        token_request = (parse_scopes(scopes, field_name="createTokenWithScopes"), parse_expiry(body.get("expiresInMinutes")))
    elif body.get("expiresInMinutes") is not None:
        parse_expiry(body["expiresInMinutes"])  # still refuse a bad value, as ACS does
    user_id = identity.create_user()
    answer: dict = {"identity": {"id": user_id}}
    if token_request:
        answer["accessToken"] = _token_json(identity.issue_token(user_id, *token_request))
    return ApiResponse(201, answer)


@bp.function_name("DeleteIdentity")
@bp.route(route="identities/{id}", methods=["DELETE"], auth_level=ANONYMOUS)
@acs_operation("DeleteIdentity", IDENTITY_API, IDENTITY_ERRORS)
def delete_identity(request: ApiRequest) -> ApiResponse:
    request.services.identity.delete_user(request.route("id"))
    return ApiResponse(204)


@bp.function_name("IssueAccessToken")
@bp.route(route="identities/{id}/:issueAccessToken", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("IssueAccessToken", IDENTITY_API, IDENTITY_ERRORS)
def issue_access_token(request: ApiRequest) -> ApiResponse:
    body = _body(request)
    scopes = parse_scopes(body.get("scopes"), field_name="scopes")
    token = request.services.identity.issue_token(request.route("id"), scopes, parse_expiry(body.get("expiresInMinutes")))
    return ApiResponse(200, _token_json(token))


@bp.function_name("RevokeAccessTokens")
@bp.route(route="identities/{id}/:revokeAccessTokens", methods=["POST"], auth_level=ANONYMOUS)
@acs_operation("RevokeAccessTokens", IDENTITY_API, IDENTITY_ERRORS)
def revoke_access_tokens(request: ApiRequest) -> ApiResponse:
    request.services.identity.revoke_tokens(request.route("id"))
    return ApiResponse(204)
