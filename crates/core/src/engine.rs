//! The engine: a loaded bundle answering requests, with a bounded cache of
//! verified tokens.

use std::sync::Mutex;

use greenlight_types::bundle::{
    ActionTokenSettings, ApprovalSettings, BundleInfo, ClaimNames, IssuerInfo, KeySource,
};
use greenlight_types::{
    AccessRequest, Action, ActionToken, Allowance, Challenge, Credential, Decision, Denial,
    DenialCode, EngineStats, GrantMode, HttpRequest, LoadError, Principal, SingleUse, StepUp,
    Verdict,
};
use serde_json::{Map, Value};

use crate::bundle::Bundle;
pub use crate::cache::TOKEN_CACHE_CAPACITY;
use crate::cache::TokenCache;
use crate::policy::entities::{EntityJson, request_entities};
use crate::policy::{Outcome, Query, SignIn};
use crate::routes::{self, RequestView};
use crate::token::{self, TokenKind, Verified};

/// The largest request parameters document accepted, in bytes.
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;

/// A loaded bundle that answers requests.
pub struct Engine {
    bundle: Bundle,
    cache: Mutex<TokenCache>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policy_hash", &self.bundle.hash)
            .finish_non_exhaustive()
    }
}

/// The action a request performs, with everything Cedar needs.
#[derive(Clone)]
pub(crate) struct Target {
    /// The action, its bound parameters and its digest.
    pub(crate) action: Action,
    /// The resource's attributes.
    pub(crate) resource_attrs: Map<String, Value>,
    /// Every parameter of the request, bound or not.
    pub(crate) context: Map<String, Value>,
    /// The entities the host gave with the request.
    pub(crate) entities: Vec<EntityJson>,
}

/// The denial for a request no route matches (a tool call: no tool
/// mapping).
fn no_route(req: &HttpRequest) -> Denial {
    if req.method == crate::routes::TOOL_METHOD {
        return Denial::new(
            DenialCode::RouteNotFound,
            format!(
                "no tool `{}` in the bundle's `[[tools]]`",
                req.path.trim_start_matches('/')
            ),
        );
    }
    Denial::new(
        DenialCode::RouteNotFound,
        format!(
            "no route for `{} {}`",
            req.method.to_ascii_uppercase(),
            req.path
        ),
    )
}

/// Refuses a path that servers and proxies may read as another: a `.` or
/// `..` segment (also percent-encoded), which one resolves and another
/// does not, and a `;`, which some servers cut off as path parameters. The
/// decision would be about a request other than the one acted on.
fn check_path(path: &str) -> Result<(), Denial> {
    let refuse = |why: &str| Err(Denial::new(DenialCode::RequestInvalid, why.to_owned()));
    if path.contains(';') {
        return refuse("the path has a `;`, which some servers read as path parameters");
    }
    const DOTS: [&str; 6] = [".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"];
    if path
        .split('/')
        .any(|seg| DOTS.iter().any(|d| seg.eq_ignore_ascii_case(d)))
    {
        return refuse("the path has a `.` or `..` segment, which servers resolve differently");
    }
    Ok(())
}

fn parse_object(text: Option<&str>, what: &str) -> Result<Map<String, Value>, Denial> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    if text.len() > MAX_PARAMS_BYTES {
        return Err(Denial::new(
            DenialCode::RequestInvalid,
            format!(
                "the {what} have {} bytes, more than the {MAX_PARAMS_BYTES} accepted",
                text.len()
            ),
        ));
    }
    // Each member named once: a gateway and an application whose JSON
    // parsers keep different copies of a repeated name would act on
    // different requests. Anything else malformed is read again only to
    // say why.
    match crate::strict::object(text.as_bytes()) {
        Ok(m) => return Ok(m),
        Err(crate::strict::StrictError::Duplicate(name)) => {
            return Err(Denial::new(
                DenialCode::RequestInvalid,
                format!("the {what} name `{name}` more than once"),
            ));
        }
        Err(crate::strict::StrictError::Malformed) => {}
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Denial::new(
            DenialCode::RequestInvalid,
            format!("the {what} must be a JSON object"),
        )),
        Err(e) => Err(Denial::new(
            DenialCode::RequestInvalid,
            format!("the {what} are not valid JSON: {e}"),
        )),
    }
}

/// Reads the bearer token from `authorization` exactly as a decision does:
/// one header, scheme `Bearer`, a non-empty token; hosts use it to know
/// whose token a decision was about.
pub fn bearer(headers: &[(String, String)]) -> Result<&str, Denial> {
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str());
    let value = values
        .next()
        .ok_or_else(|| Denial::new(DenialCode::TokenMissing, "no bearer token was presented"))?;
    if values.next().is_some() {
        return Err(Denial::new(
            DenialCode::RequestInvalid,
            "more than one `authorization` header",
        ));
    }
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Denial::new(
            DenialCode::TokenMissing,
            format!("authorization scheme `{scheme}` is not `Bearer`"),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Denial::new(
            DenialCode::TokenMissing,
            "the bearer token is empty",
        ));
    }
    Ok(token)
}

impl Engine {
    /// Validates and loads a bundle.
    pub fn load(files: &[(String, String)]) -> Result<Self, LoadError> {
        Ok(Self {
            bundle: Bundle::load(files)?,
            cache: Mutex::new(TokenCache::default()),
        })
    }

    /// The loaded bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The bundle's hash.
    pub fn policy_hash(&self) -> &str {
        &self.bundle.hash
    }

    /// Replaces one issuer's keys and clears the token cache.
    pub fn set_keys(&mut self, issuer: &str, jwks: &str) -> Result<(), LoadError> {
        self.bundle.set_keys(issuer, jwks)?;
        self.with_cache(TokenCache::clear);
        Ok(())
    }

    /// Removes one issuer's keys (its tokens are then denied, saying
    /// `reason`) and clears the token cache.
    pub fn withdraw_keys(&mut self, issuer: &str, reason: &str) -> Result<(), LoadError> {
        self.bundle.withdraw_keys(issuer, reason)?;
        self.with_cache(TokenCache::clear);
        Ok(())
    }

    fn with_cache<R>(&self, f: impl FnOnce(&mut TokenCache) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-insert; the
        // cache holds verified entries only, so it is safe to keep using.
        let mut guard = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Verifies a token (from the cache when it was verified before) and
    /// checks its time claims against `now` on every call.
    pub fn verify_token(&self, token: &str, now: u64) -> Result<Verified, Denial> {
        let cached = self.with_cache(|c| {
            c.stats.token_checks = c.stats.token_checks.saturating_add(1);
            let hit = c.get(token);
            if hit.is_none() {
                c.stats.signature_checks = c.stats.signature_checks.saturating_add(1);
            }
            hit
        });
        let verified = match cached {
            Some(v) => v,
            None => {
                let v = token::verify(
                    token,
                    &self.bundle.issuers,
                    self.bundle.action_issuer.as_ref(),
                    &self.bundle.config.principal,
                    &self.bundle.attributes,
                )?;
                self.with_cache(|c| c.insert(token, v.clone()));
                v
            }
        };
        verified.check_time(now)?;
        Ok(verified)
    }

    /// How many tokens this engine checked, and how many of those took a
    /// signature verification (the rest came from the cache).
    pub fn stats(&self) -> EngineStats {
        self.with_cache(|c| c.stats)
    }

    /// Verifies a Greenlight action token at `now` with exactly the rules a
    /// decision applies to it (signature, issuer, audience, `typ`, time
    /// claims with leeway, Greenlight's claims) and returns its claims. An
    /// access token is refused (`action-token-invalid`).
    pub fn inspect(&self, token: &str, now: u64) -> Result<ActionToken, Denial> {
        let verified = self.verify_token(token, now)?;
        match verified.kind {
            TokenKind::Action(claims) => Ok(ActionToken {
                principal: verified.principal,
                audience: verified.audience,
                token_id: claims.token_id,
                issued_at: verified.iat,
                expires_at: verified.exp,
                digest: claims.digest,
                grant: claims.grant,
                approval_id: claims.approval_id,
                approvers: claims.approvers,
                authorization_details: claims.authorization_details,
            }),
            TokenKind::Access => Err(Denial::new(
                DenialCode::ActionTokenInvalid,
                "an access token is not an action token",
            )),
        }
    }

    /// What a host needs to know about the loaded bundle.
    pub fn describe(&self) -> BundleInfo {
        let config = &self.bundle.config;
        BundleInfo {
            policy_hash: self.bundle.hash.clone(),
            claims: ClaimNames {
                entity_type: config.principal.entity_type.clone(),
                scope: config.principal.scope_claim.clone(),
                groups: config.principal.groups_claim.clone(),
                roles: config.principal.roles_claim.clone(),
                tenant: config.principal.tenant_claim.clone(),
            },
            issuers: config
                .issuers
                .iter()
                .map(|i| IssuerInfo {
                    issuer: i.issuer.clone(),
                    audience: i.audience.clone(),
                    keys: self
                        .bundle
                        .issuers
                        .iter()
                        .find(|b| b.issuer == i.issuer)
                        .map_or(KeySource::Bundle, |b| b.source.clone()),
                    algorithms: i.algorithms.clone(),
                    required_typ: i.require_typ.clone(),
                })
                .collect(),
            action_tokens: self
                .bundle
                .action_issuer
                .as_ref()
                .zip(config.action_tokens.as_ref())
                .map(|(issuer, cfg)| ActionTokenSettings {
                    issuer: issuer.issuer.clone(),
                    audience: issuer.audience.clone(),
                    ttl_seconds: cfg.ttl,
                    leeway_seconds: issuer.leeway,
                }),
            approvals: ApprovalSettings {
                default_ttl_seconds: config.approvals.default_ttl,
                poll_interval_seconds: config.approvals.poll_interval,
                confirm_max_age_seconds: config.approvals.confirm_max_age,
            },
            development: config.dev.is_some(),
            key_fetch: config.key_fetch.clone(),
        }
    }

    /// Verifies an access token at `now` and returns who it names, with
    /// its expiry, its `auth_time` and whether it is meant for approving;
    /// action tokens are refused, since they authorise one action, not a
    /// person.
    pub fn authenticate(&self, token: &str, now: u64) -> Result<Credential, Denial> {
        let verified = self.verify_token(token, now)?;
        match verified.kind {
            TokenKind::Access => Ok(Credential {
                principal: verified.principal,
                expires_at: verified.exp,
                auth_time: verified.auth_time,
                approver: verified.approver,
            }),
            TokenKind::Action(_) => Err(Denial::new(
                DenialCode::ActionTokenInvalid,
                "an action token authorises one action; it does not authenticate a person",
            )),
        }
    }

    /// Verifies an OpenID Connect ID token at `now` for the relying party
    /// `client_id` that sent `nonce` with its authentication request, and
    /// returns who signed in ([`token::verify_id_token`]): the same issuers,
    /// keys and claim mapping as access tokens, never from the cache.
    /// `client_id` and `nonce` must not be empty (`request-invalid`).
    pub fn authenticate_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
        now: u64,
    ) -> Result<Credential, Denial> {
        if client_id.is_empty() || nonce.is_empty() {
            return Err(Denial::new(
                DenialCode::RequestInvalid,
                "an ID token is checked for a relying party's `client_id` and `nonce`; both must be given",
            ));
        }
        let verified = token::verify_id_token(
            token,
            &self.bundle.issuers,
            &self.bundle.config.principal,
            &self.bundle.attributes,
            token::SignIn { client_id, nonce },
        )?;
        verified.check_time(now)?;
        Ok(Credential {
            principal: verified.principal,
            expires_at: verified.exp,
            auth_time: verified.auth_time,
            approver: verified.approver,
        })
    }

    /// Decides an HTTP request at `now`.
    pub fn evaluate_http(&self, req: &HttpRequest, now: u64) -> Decision {
        self.evaluate_http_by(req, now, &|r| self.verify_token(bearer(&r.headers)?, now))
    }

    /// [`Self::evaluate_http`], with `who` answering who the request's
    /// credentials name (at the point where the token is verified, so
    /// every other rule comes in the same order).
    pub(crate) fn evaluate_http_by(
        &self,
        req: &HttpRequest,
        now: u64,
        who: &dyn Fn(&HttpRequest) -> Result<Verified, Denial>,
    ) -> Decision {
        match self.http_target(req, who) {
            Ok((verified, target)) => self.decide(&verified, target, now),
            Err(d) => self.denied(d),
        }
    }

    /// Who asks and what for, from an HTTP request: every rule before the
    /// policies.
    pub(crate) fn http_target(
        &self,
        req: &HttpRequest,
        who: &dyn Fn(&HttpRequest) -> Result<Verified, Denial>,
    ) -> Result<(Verified, Target), Denial> {
        {
            check_path(&req.path)?;
            let found = routes::find(&self.bundle.routes, &req.method, &req.path);
            if req.params.is_none() && found.as_ref().is_some_and(|f| f.route.reads_body()) {
                return Err(Denial::new(
                    DenialCode::RequestInvalid,
                    "the route reads parameters from a JSON body, and the request has none"
                        .to_owned(),
                ));
            }
            let body = parse_object(req.params.as_deref(), "request parameters")?;
            let entities = request_entities(req.entities.as_deref())
                .map_err(|e| Denial::new(DenialCode::RequestInvalid, e))?;
            let verified = who(req)?;
            let body = Value::Object(body);
            let view = RequestView {
                query: &req.query,
                headers: &req.headers,
                body: Some(&body),
            };
            let found = found.ok_or_else(|| no_route(req))?;
            let matched = routes::read(found, &view)
                .map_err(|e| Denial::new(DenialCode::RequestInvalid, e))?;
            let route = matched.route;
            let mut bound: Map<String, Value> = route
                .bind
                .iter()
                .filter_map(|b| matched.params.get(b).map(|v| (b.clone(), v.clone())))
                .collect();
            // A tool runs with every argument it is given, declared or not:
            // its approval is bound to all of them.
            if route.is_tool() {
                bound.insert(crate::routes::TOOL_ARGUMENTS.to_owned(), body.clone());
                bound.insert(
                    crate::routes::TOOL_NAME.to_owned(),
                    Value::String(req.path.trim_start_matches('/').to_owned()),
                );
            }
            greenlight_types::check_exact(&bound)
                .map_err(|e| Denial::new(DenialCode::RequestInvalid, e))?;
            let resource_attrs = route
                .resource_attrs
                .iter()
                .filter_map(|(attr, p)| matched.params.get(p).map(|v| (attr.clone(), v.clone())))
                .collect();
            let target = Target {
                action: Action::new(
                    &route.action,
                    &route.resource_type,
                    matched.resource_id,
                    bound,
                ),
                resource_attrs,
                context: matched.params,
                entities,
            };
            Ok((verified, target))
        }
    }

    /// Whether the route for `method` and `path` reads parameters from the
    /// body: a gateway that must hold a request to read its body does so
    /// only then. `false` when no route matches.
    pub fn reads_body(&self, method: &str, path: &str) -> bool {
        routes::find(&self.bundle.routes, method, path).is_some_and(|f| f.route.reads_body())
    }

    /// The forward headers an allow of `req` would carry, from its token
    /// and its route alone (no parameters read), for a gateway that must
    /// release a request's headers before it has read the body its route
    /// binds (a proxy-wasm filter in Envoy). The decision still needs the
    /// body, and the gateway must refuse an allow whose forward headers
    /// differ from these. `Err` when the token or the route already denies
    /// the request, whatever its body.
    pub fn forward_headers_ahead(
        &self,
        req: &HttpRequest,
        now: u64,
    ) -> Result<Vec<(String, String)>, Box<Decision>> {
        let result = (|| {
            let token = bearer(&req.headers)?;
            let verified = self.verify_token(token, now)?;
            let route = routes::find(&self.bundle.routes, &req.method, &req.path)
                .ok_or_else(|| no_route(req))?
                .route;
            let approval_id = match &verified.kind {
                TokenKind::Action(c) => c.approval_id.clone(),
                TokenKind::Access => None,
            };
            let action = Action::new(
                &route.action,
                &route.resource_type,
                String::new(),
                serde_json::Map::new(),
            );
            Ok(Allowance::new(verified.principal, action, approval_id, None).forward_headers)
        })();
        result.map_err(|d| Box::new(self.denied(d)))
    }

    /// Decides an AuthZEN-shaped request at `now`.
    pub fn evaluate(&self, req: &AccessRequest, now: u64) -> Decision {
        self.evaluate_by(req, now, &|r| self.verify_token(&r.token, now))
    }

    /// [`Self::evaluate`], with `who` answering who the request's token
    /// names.
    pub(crate) fn evaluate_by(
        &self,
        req: &AccessRequest,
        now: u64,
        who: &dyn Fn(&AccessRequest) -> Result<Verified, Denial>,
    ) -> Decision {
        let result = self
            .access_target(req, true)
            .and_then(|target| Ok((who(req)?, target)));
        match result {
            Ok((verified, target)) => self.decide(&verified, target, now),
            Err(d) => self.denied(d),
        }
    }

    /// Decides an AuthZEN-shaped request for a subject a trusted host
    /// vouches for, without a token: `subject` stands where a verified
    /// token's principal would (its entity type is the bundle's). The
    /// request must carry no token, so a token is never silently ignored.
    /// The host is responsible for having authenticated whoever vouches.
    pub fn evaluate_as(&self, subject: &Principal, req: &AccessRequest, now: u64) -> Decision {
        let result = (|| {
            if !req.token.is_empty() {
                return Err(Denial::new(
                    DenialCode::RequestInvalid,
                    "a request for a vouched subject carries no token",
                ));
            }
            if subject.subject.is_empty() {
                return Err(Denial::new(
                    DenialCode::RequestInvalid,
                    "the vouched subject is empty",
                ));
            }
            let target = self.access_target(req, false)?;
            let audience = self
                .bundle
                .action_issuer
                .as_ref()
                .or_else(|| self.bundle.issuers.first())
                .map(|i| i.audience.clone())
                .unwrap_or_default();
            // A vouched subject's groups count as a token's would: only those
            // its issuer is authoritative for (none for an unknown issuer).
            let mut groups = subject.groups.clone();
            match self
                .bundle
                .issuers
                .iter()
                .find(|i| i.issuer == subject.issuer)
            {
                Some(issuer) => {
                    if let Some(allowed) = &issuer.groups {
                        groups.retain(|g| allowed.iter().any(|a| a == "*" || a == g));
                    }
                }
                None => groups.clear(),
            }
            let attributes = crate::claims::vouched(
                &self.bundle.attributes,
                &subject.attributes,
                &subject.issuer,
            )?;
            let principal = Principal {
                entity_type: self.bundle.config.principal.entity_type.clone(),
                groups,
                attributes,
                ..subject.clone()
            };
            let verified = Verified {
                kind: TokenKind::Access,
                principal,
                exp: now,
                nbf: None,
                iat: None,
                leeway: 0,
                audience,
                auth_time: None,
                acr: None,
                approver: false,
                principal_entity: Default::default(),
            };
            Ok((verified, target))
        })();
        match result {
            Ok((verified, target)) => self.decide(&verified, target, now),
            Err(d) => self.denied(d),
        }
    }

    /// The action, resource and context of an AuthZEN-shaped request;
    /// with `needs_token`, a request without a token is refused (after the
    /// context, before the names: the order the vectors pin).
    pub(crate) fn access_target(
        &self,
        req: &AccessRequest,
        needs_token: bool,
    ) -> Result<Target, Denial> {
        {
            let context = parse_object(req.context.as_deref(), "context")?;
            greenlight_types::check_exact(&context)
                .map_err(|e| Denial::new(DenialCode::RequestInvalid, e))?;
            let entities = request_entities(req.entities.as_deref())
                .map_err(|e| Denial::new(DenialCode::RequestInvalid, e))?;
            let resource_attrs = match req.resource_properties.as_deref() {
                Some(text) => parse_object(Some(text), "resource properties")?,
                // Without properties, a route for the same action and
                // resource type says which parameters are resource
                // attributes, so both request shapes decide alike.
                None => self
                    .bundle
                    .routes
                    .iter()
                    .find(|r| r.action == req.action && r.resource_type == req.resource_type)
                    .map(|r| {
                        r.resource_attrs
                            .iter()
                            .filter_map(|(attr, p)| {
                                context.get(p).map(|v| (attr.clone(), v.clone()))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            if needs_token && req.token.is_empty() {
                return Err(Denial::new(
                    DenialCode::TokenMissing,
                    "no bearer token was presented",
                ));
            }
            for (name, value) in [
                ("action", &req.action),
                ("resource type", &req.resource_type),
                ("resource id", &req.resource_id),
            ] {
                if value.is_empty() {
                    return Err(Denial::new(
                        DenialCode::RequestInvalid,
                        format!("the {name} is empty"),
                    ));
                }
            }
            if crate::policy::entities::is_action(&req.resource_type) {
                return Err(Denial::new(
                    DenialCode::RequestInvalid,
                    format!("the resource type `{}` is an action's", req.resource_type),
                ));
            }
            Ok(Target {
                action: Action::new(
                    &req.action,
                    &req.resource_type,
                    &req.resource_id,
                    context.clone(),
                ),
                resource_attrs,
                context,
                entities,
            })
        }
    }

    /// A denial due before any policy is evaluated: an action token used
    /// for another action, or a first-issuer subject spelled as another
    /// issuer's user.
    pub(crate) fn before_policies(&self, verified: &Verified, action: &Action) -> Option<Denial> {
        if let TokenKind::Action(claims) = &verified.kind
            && claims.digest != action.digest
        {
            return Some(Denial::new(
                DenialCode::ActionTokenDigestMismatch,
                format!("the action token was issued for another action than {action}"),
            ));
        }
        let home = self.home();
        // Another issuer's subjects are `ISSUER#sub` in Cedar: a subject of
        // the first issuer spelled that way would pass for one of them.
        let p = &verified.principal;
        if p.issuer == home
            && let Some(other) = self.bundle.issuers[1..]
                .iter()
                .find(|i| p.subject.starts_with(&format!("{}#", i.issuer)))
        {
            return Some(Denial::new(
                DenialCode::TokenInvalidClaim,
                format!(
                    "subject `{}` would pass for a user of `{}`",
                    p.subject, other.issuer
                ),
            ));
        }
        None
    }

    /// The bundle's first issuer, whose subjects are Cedar entities by
    /// their `sub` alone.
    pub(crate) fn home(&self) -> &str {
        self.bundle
            .issuers
            .first()
            .map_or("", |i| i.issuer.as_str())
    }

    pub(crate) fn denied(&self, d: Denial) -> Decision {
        Decision {
            verdict: Verdict::Deny(d),
            reasons: Vec::new(),
            policy_hash: self.bundle.hash.clone(),
        }
    }

    pub(crate) fn decide(&self, verified: &Verified, target: Target, now: u64) -> Decision {
        let Target {
            action,
            resource_attrs,
            context,
            entities,
        } = target;
        if let Some(d) = self.before_policies(verified, &action) {
            return self.denied(d);
        }
        let home = self.home();
        let sign_in = SignIn {
            acr: verified.acr.as_deref(),
            auth_time: verified.auth_time,
            now,
            exempt: matches!(verified.kind, TokenKind::Action(_)),
        };
        let outcome = self.bundle.policies.decide(
            Query {
                principal: &verified.principal,
                home,
                action: &action.name,
                resource_type: &action.resource_type,
                resource_id: &action.resource_id,
                resource_attrs,
                context,
                entities: &entities,
                principal_entity: Some(&verified.principal_entity),
            },
            &sign_in,
        );
        let decision = |verdict, reasons| Decision {
            verdict,
            reasons,
            policy_hash: self.bundle.hash.clone(),
        };
        let allow = |action: Action, reasons| {
            let (approval_id, consume) = match &verified.kind {
                TokenKind::Action(c) => (
                    c.approval_id.clone(),
                    (c.grant == GrantMode::Once).then(|| SingleUse {
                        token_id: c.token_id.clone(),
                        expires_at: verified.exp,
                    }),
                ),
                TokenKind::Access => (None, None),
            };
            decision(
                Verdict::Allow(Allowance::new(
                    verified.principal.clone(),
                    action,
                    approval_id,
                    consume,
                )),
                reasons,
            )
        };
        match outcome {
            Outcome::Allow(reasons) => allow(action, reasons),
            Outcome::ApprovalRequired(_, reasons)
                if matches!(verified.kind, TokenKind::Action(_)) =>
            {
                allow(action, reasons)
            }
            Outcome::ApprovalRequired(obligation, reasons) => decision(
                Verdict::ApprovalRequired(Challenge {
                    requester: verified.principal.clone(),
                    authorization_details: action.authorization_details(&verified.audience),
                    action,
                    obligation,
                }),
                reasons,
            ),
            Outcome::StepUpRequired(step_up, reasons) => decision(
                Verdict::StepUpRequired(StepUp {
                    message: format!("{action} needs a new sign-in: {}", step_up.message),
                    ..step_up
                }),
                reasons,
            ),
            Outcome::Forbidden(reasons) => decision(
                Verdict::Deny(Denial::new(
                    DenialCode::PolicyForbidden,
                    format!("{action} is forbidden by policy `{}`", reasons.join("`, `")),
                )),
                reasons,
            ),
            Outcome::NoPermit => self.denied(Denial::new(
                DenialCode::PolicyNoPermit,
                format!("no policy permits {action}"),
            )),
            Outcome::Invalid(message) => {
                self.denied(Denial::new(DenialCode::RequestInvalid, message))
            }
        }
    }
}
