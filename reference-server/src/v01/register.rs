//! `POST /agent/auth`: anonymous, verified-email and ID-JAG registration (REG-*, IDJAG-*),
//! and the account matching of ID-JAG registrations (MATCH-01..06).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Value, json};

use crate::defect::Defect;
use crate::error::ApiError;
use crate::http::{Outcome, invalid, json_body, peer_ip, scopes_json, str_member};
use crate::secrets::{hash, iso, ordered_id, secret};
use crate::state::{AppState, Now};
use crate::store::Connection;
use crate::store::audit::audit;
use crate::store::credentials::{NewCredential, insert_credential, subject_revoked};
use crate::store::registration::{insert_anonymous, insert_email_verification, upsert_agent_provider};
use crate::store::replay::{jti_is_fresh, remember_jti};
use crate::store::users::{
    create_user, delegate, delegated_user, user_by_phone, user_by_verified_email, user_by_verified_email_exact_case,
};
use crate::v01::claim::start_attempt;
use crate::verify::ID_JAG_URN;
use crate::verify::{self, TokenKind};

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/// `POST /agent/auth` (REG-GEN-01): dispatch on `type`.
pub async fn register(State(state): State<AppState>, Now(now): Now, request: Request) -> Response {
    let ip = peer_ip(&request);
    let outcome = async {
        let body = json_body(&state, request).await?;
        // REG-GEN-02: unknown or missing `type` is invalid_request.
        if state.defects.contains(Defect::RejectUnknownMembers)
            && body
                .keys()
                .any(|k| !["type", "requested_credential_type", "assertion_type", "assertion"].contains(&k.as_str()))
        {
            return Err(invalid("unknown member"));
        }
        let given = str_member(&body, "type")?;
        let lenient = state.defects.contains(Defect::LenientRegistrationType);
        match crate::defect::taken_for(lenient, given, ["anonymous", "identity_assertion"]) {
            "anonymous" => register_anonymous(&state, now, ip, &body).await,
            "identity_assertion" => register_identity(&state, now, ip, &body).await,
            _ if state.defects.contains(Defect::TreatUnknownTypeAsAnonymous) => register_anonymous(&state, now, ip, &body).await,
            other => Err(ApiError::InvalidRequest(format!("unknown type `{other}`"))),
        }
    }
    .await;
    state.reply(outcome)
}

/// DISC-19: `claim_url` equals `agent_auth.claim_uri`, absolute.
pub(crate) fn claim_url(state: &AppState) -> String {
    if state.defects.contains(Defect::RelativeClaimUrl) {
        "/agent/auth/claim".into()
    } else {
        format!("{}/agent/auth/claim", state.base_url)
    }
}

pub(crate) fn unsupported_credential(state: &AppState) -> ApiError {
    if state.defects.contains(Defect::WrongUnsupportedCredentialCode) {
        invalid("unsupported requested_credential_type")
    } else {
        ApiError::UnsupportedCredentialType
    }
}

pub(crate) async fn register_anonymous(state: &AppState, now: i64, ip: Option<IpAddr>, body: &serde_json::Map<String, Value>) -> Outcome {
    // REG-ANON-07: refused with anonymous_not_enabled when not offered.
    if !state.config.anonymous && !state.defects.contains(Defect::AnonymousWhenDisabled) {
        return Err(ApiError::AnonymousNotEnabled);
    }
    // REG-ANON-06: `requested_credential_type` is required in v0.1 (C-11).
    let requested = match str_member(body, "requested_credential_type") {
        Err(_) if state.defects.contains(Defect::DefaultCredentialType) || state.follows("C-11/defaulted") => "api_key",
        other => other?,
    };
    // REG-ANON-05: anonymous registrations only get API keys.
    let requested = crate::defect::taken_for(state.defects.contains(Defect::LenientCredentialType), requested, ["api_key"]);
    if requested != "api_key" {
        return Err(unsupported_credential(state));
    }
    if let Some(ip) = ip {
        state
            .rate_check(format!("anon:{ip}"), state.config.rate.anonymous_per_ip, now)
            .await?;
    }
    // REG-ANON-01, REG-ANON-04, REG-ANON-08, CRED-06: fresh high-entropy identifiers.
    let registration_id = ordered_id("reg_");
    let credential = secret("sk_", 24);
    let claim_token = state.mint_secret("clm_", Defect::WeakClaimToken);
    let expires = now + state.config.ttl.registration;
    let pre = if state.defects.contains(Defect::FullScopesBeforeClaim) {
        state.config.scopes.clone()
    } else {
        state.config.pre_claim_scopes.clone()
    };
    let post = state.config.scopes.clone();
    {
        let bind_at_once = state.defects.contains(Defect::BindAnonymousToUser);
        let (rid, cred_hash, claim_hash, pre, post) = (
            registration_id.clone(),
            hash(&credential),
            hash(&claim_token),
            scopes_json(&pre),
            scopes_json(&post),
        );
        state
            .db
            .call(move |conn| {
                insert_anonymous(conn, &rid, "api_key", now, expires, &claim_hash, &pre, &post)?;
                // REG-ANON-11: the key acts as no user until a claim binds one.
                let user = if bind_at_once {
                    Some(create_user(conn, None, false, None, now)?)
                } else {
                    None
                };
                insert_credential(
                    conn,
                    &NewCredential {
                        hash: &cred_hash,
                        registration_id: &rid,
                        kind: "api_key",
                        scopes: &pre,
                        expires_at: None,
                        user_id: user.as_deref(),
                        source: "anonymous",
                        subject: None,
                        created_at: now,
                    },
                )?;
                // AUDIT-01
                audit(
                    conn,
                    now,
                    "registration.created",
                    json!({ "registration_id": rid, "registration_type": "anonymous" }),
                )
            })
            .await?;
    }
    let pre_scopes_out = if state.defects.contains(Defect::FullScopesBeforeClaim) {
        &state.config.scopes
    } else {
        &state.config.pre_claim_scopes
    };
    Ok(state.secret_json(json!({
        "registration_id": registration_id,
        "registration_type": if state.defects.contains(Defect::WrongRegistrationType) { "anonymous_registration" } else { "anonymous" },
        "credential_type": "api_key",
        "credential": credential,
        "credential_expires": null,
        "scopes": pre_scopes_out,
        "claim_url": claim_url(state),
        "claim_token": claim_token,
        "claim_token_expires": iso(expires),
        "post_claim_scopes": state.config.scopes,
    })))
}

pub(crate) async fn register_identity(state: &AppState, now: i64, ip: Option<IpAddr>, body: &serde_json::Map<String, Value>) -> Outcome {
    let assertion_type = str_member(body, "assertion_type")?;
    // IDJAG-40: unknown assertion types are invalid_request.
    let lenient = state.defects.contains(Defect::LenientAssertionType);
    let assertion_type = crate::defect::taken_for(lenient, assertion_type, [ID_JAG_URN, "verified_email"]);
    if assertion_type != ID_JAG_URN && assertion_type != "verified_email" {
        if state.defects.contains(Defect::UnknownAssertionTypeUnsupportedCredential) {
            return Err(ApiError::UnsupportedCredentialType);
        }
        return Err(ApiError::InvalidRequest(format!("unknown assertion_type `{assertion_type}`")));
    }
    let assertion = str_member(body, "assertion")?;
    let requested = str_member(body, "requested_credential_type")?;
    let lenient = state.defects.contains(Defect::LenientCredentialType);
    let advertised = state.config.identity_credential_types.iter().map(String::as_str);
    let requested = crate::defect::taken_for(lenient, requested, advertised);
    // REG-EMAIL-05, IDJAG-38: only the advertised credential types.
    if !state.config.identity_credential_types.iter().any(|t| t == requested) {
        return Err(unsupported_credential(state));
    }
    if let Some(ip) = ip {
        state
            .rate_check(format!("ident:{ip}"), state.config.rate.identity_per_ip, now)
            .await?;
    }
    if assertion_type == "verified_email" {
        register_email(state, now, assertion, requested).await
    } else {
        register_id_jag(state, now, assertion, requested).await
    }
}

pub(crate) async fn register_email(state: &AppState, now: i64, email: &str, requested: &str) -> Outcome {
    // REG-EMAIL-04
    if !state.config.verified_email && !state.defects.contains(Defect::VerifiedEmailWhenDisabled) {
        return Err(ApiError::VerifiedEmailNotEnabled);
    }
    // REG-EMAIL-03
    if crate::mail::email_address(email).is_none() && !state.defects.contains(Defect::AcceptAnyEmail) {
        return Err(invalid("assertion is not an email address"));
    }
    let registration_id = ordered_id("reg_");
    let claim_token = state.mint_secret("clm_", Defect::WeakEmailClaimToken);
    // EXP-03 (C-14): the emailed link is the only way to finish an email-verification claim
    // and it lives as long as its attempt, so that is the registration's window too, and
    // `claim_token_expires` says so rather than promising the anonymous registration TTL.
    let window = if state.defects.contains(Defect::EmailClaimWindowOverstated) {
        state.config.ttl.registration
    } else {
        state.config.ttl.registration.min(state.config.ttl.claim_attempt)
    };
    let expires = now + window;
    let (rid, claim_hash, email_owned, requested_owned) = (
        registration_id.clone(),
        hash(&claim_token),
        email.to_string(),
        requested.to_string(),
    );
    let (pre, post) = (scopes_json(&state.config.pre_claim_scopes), scopes_json(&state.config.scopes));
    state
        .db
        .call(move |conn| {
            insert_email_verification(conn, &rid, now, expires, &claim_hash, &requested_owned, &email_owned, &pre, &post)?;
            audit(
                conn,
                now,
                "registration.created",
                json!({ "registration_id": rid, "registration_type": "email-verification" }),
            )
        })
        .await?;
    // REG-EMAIL-02: the service emails the address at once.
    start_attempt(state, now, &registration_id, email).await?;
    // REG-EMAIL-08: the answer is the same whether or not the address has an account.
    let known = if state.defects.contains(Defect::DiscloseExistingAccount) {
        let e = email.to_string();
        state.db.call(move |conn| user_by_verified_email(conn, &e)).await?.is_some()
    } else {
        false
    };
    let mut response = json!({
        "registration_id": registration_id,
        "registration_type": "email-verification",
        "claim_url": claim_url(state),
        "claim_token": claim_token,
        "claim_token_expires": iso(expires),
        "post_claim_scopes": state.config.scopes,
    });
    if known {
        response["existing_account"] = json!(true);
    }
    // REG-EMAIL-01: no credential before the claim completes.
    if state.defects.contains(Defect::IssueCredentialBeforeEmailClaim) {
        let credential = issue_credential(state, now, &registration_id, requested, &state.config.scopes, None, None).await?;
        response["credential"] = json!(credential);
        response["credential_type"] = json!(requested);
    }
    Ok(state.secret_json(response))
}

/// Inserts a credential for a registration and returns its plaintext (shown once).
pub(crate) async fn issue_credential(
    state: &AppState,
    now: i64,
    registration_id: &str,
    kind: &str,
    scopes: &[String],
    user_id: Option<String>,
    triple: Option<(String, String, String)>,
) -> Result<String, ApiError> {
    let credential = if kind == "access_token" {
        secret("at_", 24)
    } else {
        secret("sk_", 24)
    };
    let never = triple.is_none() && state.defects.contains(Defect::ClaimAccessTokenNeverExpires);
    let expires = (kind == "access_token" && !never).then_some(now + state.config.ttl.access_token);
    let (h, rid, kind, scopes) = (
        hash(&credential),
        registration_id.to_string(),
        kind.to_string(),
        scopes_json(scopes),
    );
    let (source, iss, sub, aud) = match triple {
        Some((i, s, a)) => ("identity_assertion", Some(i), Some(s), Some(a)),
        None => ("email-verification", None, None, None),
    };
    state
        .db
        .call(move |conn| {
            let subject = match (&iss, &sub, &aud) {
                (Some(iss), Some(sub), Some(aud)) => Some((iss.as_str(), sub.as_str(), aud.as_str())),
                _ => None,
            };
            insert_credential(
                conn,
                &NewCredential {
                    hash: &h,
                    registration_id: &rid,
                    kind: &kind,
                    scopes: &scopes,
                    expires_at: expires,
                    user_id: user_id.as_deref(),
                    source,
                    subject,
                    created_at: now,
                },
            )
        })
        .await?;
    Ok(credential)
}

/// MATCH-01..06: `(iss, sub)` first, then a verified email, then a verified phone, else JIT.
pub(crate) fn match_user(
    conn: &Connection,
    state_defects: &crate::defect::Defects,
    now: i64,
    v: &verify::Verified,
) -> Result<String, ApiError> {
    if !state_defects.contains(Defect::NewUserPerAssertion) {
        // The defect: `sub` alone, whichever issuer asserted it.
        let iss = (!state_defects.contains(Defect::MatchBySubAlone)).then_some(v.iss.as_str());
        let existing = delegated_user(conn, iss, &v.sub)?;
        if let Some(user) = existing {
            return Ok(user);
        }
    }
    let email = v.claims.get("email").and_then(Value::as_str);
    // MATCH-03: only an email asserted as verified (a JSON true) is used for linking.
    let email_verified = v.claims.get("email_verified") == Some(&Value::Bool(true));
    let phone = v.claims.get("phone_number").and_then(Value::as_str);
    let phone_verified = v.claims.get("phone_number_verified") == Some(&Value::Bool(true));
    let mut user: Option<String> = None;
    let may_link =
        (email_verified || state_defects.contains(Defect::LinkUnverifiedEmail)) && !state_defects.contains(Defect::SkipEmailLinking);
    if let Some(email) = email.filter(|_| may_link) {
        // MATCH-02: verified email match, case-insensitive.
        user = if state_defects.contains(Defect::CaseSensitiveEmailMatch) {
            user_by_verified_email_exact_case(conn, email)?
        } else {
            user_by_verified_email(conn, email)?
        };
    }
    if user.is_none()
        && let Some(phone) = phone.filter(|_| phone_verified)
    {
        // MATCH-04
        user = user_by_phone(conn, phone)?;
    }
    let user = match user {
        Some(u) => u,
        // MATCH-05: just-in-time provisioning.
        None => create_user(
            conn,
            email.filter(|_| email_verified),
            email_verified,
            phone.filter(|_| phone_verified),
            now,
        )?,
    };
    delegate(conn, &v.iss, &v.sub, &user)?;
    Ok(user)
}

pub(crate) async fn register_id_jag(state: &AppState, now: i64, assertion: &str, requested: &str) -> Outcome {
    if !state.config.id_jag {
        return Err(ApiError::IssuerNotEnabled);
    }
    let verified = match verify::verify(state, assertion, TokenKind::IdJag, now).await {
        Err(ApiError::MissingVerifiedEmail) if state.defects.contains(Defect::BurnJtiOfRejectedTokens) => {
            if let Some((iss, jti)) = verify::peek_iss_jti(assertion) {
                let (defects, instance) = (state.defects.clone(), state.instance.clone());
                let _ = state
                    .db
                    .call(move |conn| remember_jti(conn, &defects, &instance, &iss, TokenKind::IdJag, &jti, now + 600, now))
                    .await;
            }
            return Err(ApiError::MissingVerifiedEmail);
        }
        other => other?,
    };
    state
        .rate_check(format!("iss:{}", verified.iss), state.config.rate.per_issuer, now)
        .await?;
    // CRED-09: one registration id per (iss, sub, aud).
    let registration_id = if state.defects.contains(Defect::RegistrationIdPerAssertion) {
        ordered_id("reg_")
    } else {
        format!(
            "reg_{}",
            &hash(&format!("{}\n{}\n{}", verified.iss, verified.sub, verified.aud))[..22]
        )
    };
    // CRED-06: unguessable.
    let bytes = state.secret_bytes(Defect::WeakIdJagCredential);
    let credential = if requested == "access_token" {
        secret("at_", bytes)
    } else {
        secret("sk_", bytes)
    };
    let expires = (requested == "access_token").then_some(now + state.config.ttl.access_token);
    let scopes = state.config.scopes.clone();
    {
        let state2 = state.clone();
        let (rid, cred_hash, kind, scopes_j) = (
            registration_id.clone(),
            hash(&credential),
            requested.to_string(),
            scopes_json(&scopes),
        );
        state
            .db
            .call(move |conn| {
                // IDJAG-28..30: a `jti` is accepted once, atomically (one writer thread).
                let (iss, jti, until) = (&verified.iss, &verified.jti, verified.replay_until);
                if !jti_is_fresh(
                    conn,
                    &state2.defects,
                    &state2.instance,
                    TokenKind::IdJag,
                    iss,
                    jti,
                    until,
                    now,
                    Defect::SkipReplayCheck,
                )? {
                    return Err(ApiError::ReplayDetected);
                }
                // REVOKE-19: a revocation ends the delegations it names, not the person's right
                // to delegate again.
                if state2.defects.contains(Defect::RefuseRevokedSubject)
                    && subject_revoked(conn, &verified.iss, &verified.sub, &verified.aud)?
                {
                    return Err(ApiError::InvalidRequest("this identity's delegation was revoked".into()));
                }
                let user = match_user(conn, &state2.defects, now, &verified)?;
                upsert_agent_provider(conn, &rid, now, &user, &kind, &scopes_j)?;
                insert_credential(
                    conn,
                    &NewCredential {
                        hash: &cred_hash,
                        registration_id: &rid,
                        kind: &kind,
                        scopes: &scopes_j,
                        expires_at: expires,
                        user_id: Some(&user),
                        source: "identity_assertion",
                        subject: Some((&verified.iss, &verified.sub, &verified.aud)),
                        created_at: now,
                    },
                )?;
                let c = &verified.claims;
                audit(
                    conn,
                    now,
                    "registration.created",
                    json!({ "registration_id": rid, "registration_type": "agent-provider", "iss": verified.iss, "sub": verified.sub,
                            "agent_platform": c.get("agent_platform"), "agent_context_id": c.get("agent_context_id") }),
                )
            })
            .await?;
    }
    let mut response = json!({
        "registration_id": registration_id,
        "registration_type": if state.defects.contains(Defect::WrongRegistrationType) { "agent_provider" } else { "agent-provider" },
        "credential_type": requested,
        "credential": credential,
        "credential_expires": expires.map(iso),
        "scopes": scopes,
    });
    // CRED-02: never a refresh token (ID-JAG §4.4.3).
    if state.defects.contains(Defect::ReturnRefreshToken) {
        response["refresh_token"] = json!(secret("rt_", 24));
    }
    Ok(state.secret_json(response))
}
