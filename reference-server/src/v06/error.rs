//! The v0.6 profile's errors and their one mapping to the wire. Each endpoint family answers in
//! its own RFC's shape: the token and revocation endpoints as RFC 6749 §5.2 (with RFC 8628
//! §3.5's polling codes for the claim grant), the SET receiver as RFC 8935 §2.4, and the
//! registration and claim endpoints with the vocabulary v0.1 shares ([`ApiError`]).

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::v06::wire::no_store;

/// RFC 6749 §5.2 and RFC 8628 §3.5 codes the token and revocation endpoints use.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum TokenCode {
    /// A member is missing or malformed, or the grant is unknown.
    InvalidRequest,
    /// The assertion or claim token does not grant anything.
    InvalidGrant,
    /// The grant type is not one this server offers.
    UnsupportedGrantType,
    /// The `resource` is not this service's API (RFC 8707 §2).
    InvalidTarget,
    /// The user has not finished the ceremony yet.
    AuthorizationPending,
    /// Polled faster than `interval`.
    SlowDown,
    /// The ceremony's window closed.
    ExpiredToken,
}

impl TokenCode {
    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidTarget => "invalid_target",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
        }
    }
}

/// RFC 8935 §2.4 codes the SET receiver uses.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
// The names follow the codes on the wire, which all start with `invalid_`.
#[allow(clippy::enum_variant_names)]
pub(crate) enum SetCode {
    /// Not a SET, too large, or an unknown event.
    InvalidRequest,
    /// The issuer is not on the trust list.
    InvalidIssuer,
    /// `aud` does not name this service.
    InvalidAudience,
    /// The signature does not verify.
    InvalidKey,
}

impl SetCode {
    fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::InvalidKey => "invalid_key",
        }
    }
}

/// Every error a v0.6 endpoint answers with.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) enum V06Error {
    /// At the token or revocation endpoint.
    Token(TokenCode, &'static str),
    /// At the SET receiver.
    Set(SetCode, Cow<'static, str>),
    /// At the registration and claim endpoints.
    Api(ApiError),
}

impl From<ApiError> for V06Error {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl V06Error {
    /// The answer on the wire.
    pub(crate) fn respond(self, state: &AppState) -> Response {
        match self {
            Self::Token(code, description) => no_store(
                state,
                StatusCode::BAD_REQUEST,
                json!({ "error": code.as_str(), "error_description": description }),
            ),
            Self::Set(code, description) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "err": code.as_str(), "description": description })),
            )
                .into_response(),
            Self::Api(e) => state.reply(Err(e)),
        }
    }
}

/// A token-endpoint error.
pub(crate) fn token_error(code: TokenCode, description: &'static str) -> V06Error {
    V06Error::Token(code, description)
}
