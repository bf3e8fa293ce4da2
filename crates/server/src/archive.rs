//! Bundle archives and their signatures: what `greenlight bundle build`
//! and `greenlight bundle sign` make, and what a server given
//! `--bundle https://…` fetches and checks before anything is loaded.
//!
//! - The archive is a gzip'd tar of the bundle's files (those
//!   `read_bundle_dir` reads: `greenlight.toml`, `policy.cedar`,
//!   `schema.cedarschema`, `*.json`) and its tests (`tests/*.toml`), and
//!   nothing else, so keys kept beside a bundle never travel with it. It is
//!   deterministic: the same folder builds the same bytes (sorted entries,
//!   no times, owners or modes), so replicas agree on its digest.
//! - The signature is a detached compact JWS (`typ` `greenlight-bundle+jws`)
//!   whose payload names the archive's SHA-256, the bundle it is (so one
//!   service's signed bundle cannot stand for another's) and when it was
//!   signed (so an older signed archive cannot replace a newer one):
//!   `{"sha256": "<hex>", "bundle": "payments", "iat": <seconds>}`. It is
//!   checked against keys the server is configured with (a JWKS file),
//!   never against keys that come with the bundle.
//! - Unpacking refuses anything but regular files with those names, and
//!   bounds entries and sizes, before a byte reaches the engine.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use greenlight_types::bundle::{CONFIG_FILE, POLICY_FILE, SCHEMA_FILE};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policytest::TESTS_DIR;

/// The `typ` of a bundle signature.
pub const SIGNATURE_TYP: &str = "greenlight-bundle+jws";

/// The most an archive may unpack to, in bytes, all files together.
pub const MAX_UNPACKED_BYTES: u64 = 16 << 20;

/// The most entries an archive may have.
pub const MAX_ENTRIES: usize = 1000;

/// A bundle as `(file name, contents)` pairs: its files, and its tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// The bundle's files, sorted by name.
    pub files: Vec<(String, String)>,
    /// Its tests (`tests/NAME.toml` as `NAME.toml`), sorted by name.
    pub tests: Vec<(String, String)>,
}

fn is_bundle_file(name: &str) -> bool {
    matches!(name, CONFIG_FILE | POLICY_FILE | SCHEMA_FILE)
        || (name.ends_with(".json") && !name.contains('/'))
}

fn is_test_name(name: &str) -> bool {
    name.ends_with(".toml") && !name.contains('/') && !name.starts_with('.')
}

/// The archive of the bundle folder `dir`.
pub fn build(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let files = greenlight_host::read_bundle_dir(dir)
        .with_context(|| format!("cannot read bundle {}", dir.display()))?;
    if !files.iter().any(|(n, _)| n == CONFIG_FILE) {
        bail!("{} has no {CONFIG_FILE}", dir.display());
    }
    // What would be refused where it is served is refused here, before it
    // is published: a policy that does not load, a key set with a private
    // key, any other JSON that is not a key set.
    if let Err(e) = greenlight_core::Engine::load(&files) {
        bail!("{} is not a bundle a server would load: {e}", dir.display());
    }
    let tests = crate::policytest::read_files(dir)?;
    pack(&Unpacked { files, tests })
}

/// The archive of a bundle's files and tests.
pub fn pack(bundle: &Unpacked) -> anyhow::Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut entries: Vec<(String, &str)> = bundle
        .files
        .iter()
        .map(|(n, t)| (n.clone(), t.as_str()))
        .chain(
            bundle
                .tests
                .iter()
                .map(|(n, t)| (format!("{TESTS_DIR}/{n}"), t.as_str())),
        )
        .collect();
    entries.sort();
    for (name, text) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &name, text.as_bytes())?;
    }
    Ok(tar.into_inner()?.finish()?)
}

/// The files of an archive, refusing anything but the bundle's own files
/// and its tests, more than [`MAX_ENTRIES`] entries, or more than
/// [`MAX_UNPACKED_BYTES`] in all.
pub fn unpack(archive: &[u8]) -> anyhow::Result<Unpacked> {
    let gz = flate2::read::GzDecoder::new(archive);
    // Reading past the bound is an error below, not an allocation.
    let mut tar = tar::Archive::new(gz.take(MAX_UNPACKED_BYTES + 64 * 1024));
    let mut out = Unpacked::default();
    let mut total = 0u64;
    for (i, entry) in tar
        .entries()
        .context("the archive is not a gzip'd tar")?
        .enumerate()
    {
        if i >= MAX_ENTRIES {
            bail!("the archive has more than {MAX_ENTRIES} entries");
        }
        let mut entry = entry.context("the archive is not a gzip'd tar")?;
        let path = entry.path().context("an entry has no usable name")?;
        let name = path
            .to_str()
            .ok_or_else(|| anyhow!("an entry's name is not UTF-8"))?
            .to_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            bail!("entry `{name}` is not a regular file");
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED_BYTES {
            bail!("the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes");
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .with_context(|| format!("entry `{name}` is not UTF-8 text"))?;
        match name.split_once('/') {
            None if is_bundle_file(&name) => out.files.push((name, text)),
            Some((TESTS_DIR, test)) if is_test_name(test) => {
                out.tests.push((test.to_owned(), text))
            }
            _ => bail!("entry `{name}` is not a bundle file or a test"),
        }
    }
    for list in [&mut out.files, &mut out.tests] {
        list.sort();
        if list.windows(2).any(|w| w[0].0 == w[1].0) {
            bail!("the archive names a file twice");
        }
    }
    if !out.files.iter().any(|(n, _)| n == CONFIG_FILE) {
        bail!("the archive has no {CONFIG_FILE}");
    }
    Ok(out)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// What a bundle signature says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Which bundle it is.
    pub bundle: String,
    /// When it was signed, in Unix seconds.
    pub iat: u64,
}

/// A signing key from a PEM file (Ed25519 or P-256, PKCS#8), with the
/// algorithm it signs with.
pub fn signing_key(pem: &str) -> anyhow::Result<(EncodingKey, Algorithm)> {
    if let Ok(k) = EncodingKey::from_ed_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::EdDSA));
    }
    if let Ok(k) = EncodingKey::from_ec_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::ES256));
    }
    bail!("the key is neither an Ed25519 nor a P-256 private key in PEM (PKCS#8)")
}

/// The public JWKS of a signing key, with `kid`: what servers are
/// configured with to trust its signatures.
pub fn public_jwks(pem: &str, kid: &str) -> anyhow::Result<JwkSet> {
    let (key, alg) = signing_key(pem)?;
    let mut jwk = Jwk::from_encoding_key(&key, alg)?;
    jwk.common.key_id = Some(kid.to_owned());
    Ok(JwkSet { keys: vec![jwk] })
}

/// A detached signature of `archive`, the bundle named `bundle`, with the
/// key in `pem`, naming `kid`, signed at `now`.
pub fn sign(
    archive: &[u8],
    bundle: &str,
    pem: &str,
    kid: &str,
    now: u64,
) -> anyhow::Result<String> {
    let (key, alg) = signing_key(pem)?;
    let mut header = Header::new(alg);
    header.typ = Some(SIGNATURE_TYP.to_owned());
    header.kid = Some(kid.to_owned());
    let statement = Statement {
        sha256: sha256_hex(archive),
        bundle: bundle.to_owned(),
        iat: now,
    };
    Ok(jsonwebtoken::encode(&header, &statement, &key)?)
}

/// Checks that `signature` is a bundle signature of `archive` by one of
/// `trusted`: its `typ`, a `kid` naming a trusted key, a valid signature,
/// the archive's digest, and that it names the bundle `bundle`. Returns
/// what it says (the caller checks its time).
pub fn verify(
    archive: &[u8],
    signature: &str,
    trusted: &JwkSet,
    bundle: &str,
) -> anyhow::Result<Statement> {
    let header = jsonwebtoken::decode_header(signature.trim())
        .context("the signature is not a compact JWS")?;
    if header.typ.as_deref() != Some(SIGNATURE_TYP) {
        bail!("the signature's typ is not `{SIGNATURE_TYP}`");
    }
    if !matches!(
        header.alg,
        Algorithm::EdDSA
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::PS256
    ) {
        bail!("the signature's algorithm {:?} is not accepted", header.alg);
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| anyhow!("the signature names no key (`kid`)"))?;
    let jwk = trusted.find(kid).ok_or_else(|| {
        // The key id comes from whoever serves the bundle: quoted short.
        let shown: String = kid.chars().take(64).collect();
        anyhow!("the signature's key `{shown}` is not a trusted bundle signer")
    })?;
    let key =
        DecodingKey::from_jwk(jwk).with_context(|| format!("trusted key `{kid}` is unusable"))?;
    // The key decides the algorithm: an HMAC or another family named in
    // the header is refused by `decode` against this key.
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let statement = jsonwebtoken::decode::<Statement>(signature.trim(), &key, &validation)
        .map_err(|e| anyhow!("the signature does not verify with key `{kid}`: {e}"))?
        .claims;
    if statement.sha256 != sha256_hex(archive) {
        bail!(
            "the signature is for another archive (sha256 {})",
            statement.sha256
        );
    }
    if statement.bundle != bundle {
        let shown: String = statement.bundle.chars().take(64).collect();
        bail!("the signature is for bundle `{shown}`, not `{bundle}`");
    }
    Ok(statement)
}

/// The name a bundle archive goes by when none is given: its file name
/// without `.tar.gz` (`payments.tar.gz` is `payments`).
pub fn default_name(file_name: &str) -> String {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    base.strip_suffix(".tar.gz")
        .or_else(|| base.strip_suffix(".tgz"))
        .unwrap_or(base)
        .to_owned()
}

/// Reads a JWKS of trusted bundle signers.
pub fn read_trusted(path: &Path) -> anyhow::Result<JwkSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read bundle signing keys {}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JWKS", path.display()))?;
    if set.keys.is_empty() {
        bail!("{} names no key", path.display());
    }
    if let Some(k) = set.keys.iter().find(|k| k.common.key_id.is_none()) {
        bail!(
            "every trusted bundle signer needs a `kid` ({:?} has none)",
            k.common.key_algorithm
        );
    }
    Ok(set)
}

/// `greenlight bundle build|sign|public-key`. Returns the exit code.
pub fn run_command(
    command: crate::cli::BundleCommand,
    now: u64,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<i32> {
    use crate::cli::BundleCommand;
    let read_key = |key: &Path| {
        std::fs::read_to_string(key).with_context(|| format!("cannot read key {}", key.display()))
    };
    match command {
        BundleCommand::Build { dir, out: path } => {
            let bytes = build(&dir)?;
            let unpacked = unpack(&bytes)?;
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(
                out,
                "wrote {} ({} bytes, {} files, {} test files, sha256 {})",
                path.display(),
                bytes.len(),
                unpacked.files.len(),
                unpacked.tests.len(),
                sha256_hex(&bytes)
            )?;
        }
        BundleCommand::Sign {
            archive,
            key,
            kid,
            name,
            out: sig,
        } => {
            let bytes = std::fs::read(&archive)
                .with_context(|| format!("cannot read {}", archive.display()))?;
            // Only a bundle is signed: what a server would refuse is refused here.
            unpack(&bytes)?;
            let name = name.unwrap_or_else(|| {
                default_name(&archive.file_name().unwrap_or_default().to_string_lossy())
            });
            let jws = sign(&bytes, &name, &read_key(&key)?, &kid, now)?;
            let sig = sig.unwrap_or_else(|| {
                let mut p = archive.clone().into_os_string();
                p.push(".sig");
                p.into()
            });
            std::fs::write(&sig, format!("{jws}\n"))
                .with_context(|| format!("cannot write {}", sig.display()))?;
            writeln!(
                out,
                "wrote {} (bundle {name}, key {kid}, sha256 {})",
                sig.display(),
                sha256_hex(&bytes)
            )?;
        }
        BundleCommand::PublicKey { key, kid } => {
            let jwks = public_jwks(&read_key(&key)?, &kid)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&jwks)?)?;
        }
        BundleCommand::Validate { .. } => bail!("not an archive command"),
    }
    Ok(0)
}
