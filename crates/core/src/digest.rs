//! The action digest and RFC 9396 `authorization_details`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The `type` of Greenlight's RFC 9396 authorization details.
pub const AUTHORIZATION_DETAILS_TYPE: &str = "urn:greenlight:action";

/// One concrete action: what is done, to what, with which bound parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// The action id, e.g. `payment.refund`.
    pub action: String,
    /// The resource's entity type.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// The bound parameters.
    pub params: Map<String, Value>,
}

impl Action {
    /// The canonical object the digest is taken over.
    pub fn canonical_value(&self) -> Value {
        json!({
            "action": self.action,
            "resource": { "type": self.resource_type, "id": self.resource_id },
            "params": self.params,
        })
    }

    /// base64url (no padding) SHA-256 over the RFC 8785 canonical JSON of
    /// [`Action::canonical_value`].
    pub fn digest(&self) -> String {
        // Canonicalising a Value built from strings, integers and booleans
        // cannot fail; an empty input would give a digest no token carries.
        let canonical =
            serde_json_canonicalizer::to_vec(&self.canonical_value()).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(Sha256::digest(&canonical))
    }

    /// RFC 9396 `authorization_details` naming exactly this action.
    pub fn authorization_details(&self, location: &str, digest: &str) -> Value {
        json!([{
            "type": AUTHORIZATION_DETAILS_TYPE,
            "locations": [location],
            "actions": [self.action],
            "identifier": format!("{}::{}", self.resource_type, self.resource_id),
            "resource": { "type": self.resource_type, "id": self.resource_id },
            "params": self.params,
            "action_digest": digest,
        }])
    }
}
