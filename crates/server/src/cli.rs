//! Command-line interface.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use greenlight_core::{Decision, LoadError};

use crate::dev::{DevTokenRequest, dev_token};
use crate::request::RequestFile;

/// Greenlight: just-in-time action approval for OAuth 2.0 APIs.
#[derive(Debug, Parser)]
#[command(name = "greenlight", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decide one request against a bundle and print the decision as JSON.
    Check {
        /// The bundle folder.
        #[arg(long)]
        bundle: PathBuf,
        /// A request file: {"method", "path", "query", "headers": {...}, "params": {...}}.
        #[arg(long)]
        request: PathBuf,
        /// A bearer token to put in the request's `authorization` header.
        #[arg(long)]
        token: Option<String>,
        /// The time to decide at, in Unix seconds. Defaults to now.
        #[arg(long)]
        now: Option<u64>,
        /// Which engine decides: the component in wasmtime, or the core natively.
        #[arg(long, value_enum, default_value_t = EngineKind::Wasm)]
        engine: EngineKind,
        /// Extra keys as ISSUER=JWKS_FILE (`greenlight` for action tokens).
        #[arg(long = "keys", value_name = "ISSUER=FILE")]
        keys: Vec<String>,
    },
    /// Explain one request's decision: which policies applied, which of
    /// their conditions failed, and whose annotations an approval asks
    /// for. The request is a request file with a token, or one of the
    /// bundle's policy tests by name (its claims stand for the token).
    /// Decides with the core natively: the shipped module's rules.
    Explain {
        /// The bundle folder.
        #[arg(long)]
        bundle: PathBuf,
        /// A request file, as for `check`.
        #[arg(long, conflicts_with = "test", required_unless_present = "test")]
        request: Option<PathBuf>,
        /// A bearer token to put in the request's `authorization` header.
        #[arg(long, requires = "request")]
        token: Option<String>,
        /// A policy test of the bundle (`tests/*.toml`), by its name or as
        /// `FILE: NAME`.
        #[arg(long)]
        test: Option<String>,
        /// The time a request, or a test whose file has no `now` of its
        /// own, is decided at, in Unix seconds. Defaults to now.
        #[arg(long)]
        now: Option<u64>,
        /// Extra keys as ISSUER=JWKS_FILE (`greenlight` for action tokens).
        #[arg(long = "keys", value_name = "ISSUER=FILE")]
        keys: Vec<String>,
    },
    /// Serve the approval API: decisions, CIBA approvals, action tokens.
    Serve {
        /// The bundle folder.
        #[arg(long)]
        bundle: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The store: `sqlite://FILE` (created on first start) or `postgres://...`.
        #[arg(long, default_value = "sqlite://greenlight.db")]
        store: String,
        /// The base URL clients reach the server at. Defaults to `http://LISTEN`.
        #[arg(long)]
        public_url: Option<String>,
        /// The server's own settings (TOML): webhooks, key rotation,
        /// housekeeping. See `greenlight::serve::settings`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Serve a development bundle (one with a `[dev]` signing key,
        /// whose tokens anyone holding that key can mint). Without it such
        /// a bundle is refused.
        #[arg(long)]
        dev: bool,
        /// A custom policy module (any component exporting
        /// `greenlight:approval/approver`) to decide with instead of the
        /// shipped one; swapped live when the file changes, like the bundle.
        #[arg(long)]
        component: Option<PathBuf>,
    },
    /// Run a bundle's policy tests (`tests/*.toml` in the bundle folder)
    /// and report each failure with the decision and its determining
    /// policies. Exits 1 when a test fails.
    Test {
        /// The bundle folder.
        bundle: PathBuf,
        /// A policy module to test with instead of the shipped one.
        #[arg(long)]
        component: Option<PathBuf>,
        /// The time tests without their own `now` decide at, in Unix
        /// seconds. Defaults to now.
        #[arg(long)]
        now: Option<u64>,
    },
    /// Manage Greenlight's signing keys in a store.
    Keys {
        /// What to do with the keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with bundles.
    Bundle {
        /// What to do with the bundle.
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Locate or export greenlight.wasm, for hosts in other languages.
    Component {
        /// What to do with the component.
        #[command(subcommand)]
        command: ComponentCommand,
    },
    /// Print an access token signed with a bundle's development key.
    DevToken {
        /// The bundle folder; its greenlight.toml must have a `[dev]` section.
        #[arg(long)]
        bundle: PathBuf,
        /// The subject (`sub`).
        #[arg(long)]
        sub: String,
        /// Space-separated scopes.
        #[arg(long)]
        scope: Option<String>,
        /// The client the token is issued to (`client_id`). Defaults to
        /// `greenlight-dev`.
        #[arg(long)]
        client: Option<String>,
        /// Extra claims as key=value; a JSON value (`groups=["finance"]`)
        /// stays JSON, and `null` removes the claim (`auth_time=null`).
        #[arg(long = "claim", value_name = "KEY=VALUE")]
        claims: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Issue time in Unix seconds. Defaults to now.
        #[arg(long)]
        now: Option<u64>,
    },
}

/// `greenlight bundle ...`
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Report every problem in a bundle, or that it is valid.
    Validate {
        /// The bundle folder.
        dir: PathBuf,
    },
    /// Pack a bundle folder (its files and tests/*.toml, nothing else)
    /// into the archive a server fetches with `--bundle https://…`. The
    /// same folder always gives the same bytes.
    Build {
        /// The bundle folder.
        dir: PathBuf,
        /// Where to write the archive (`.tar.gz`).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign an archive: writes a detached JWS over its SHA-256, which
    /// servers check against their `[remote_bundle] trusted_keys`.
    Sign {
        /// The archive.
        archive: PathBuf,
        /// The signing key: an Ed25519 or P-256 private key, PEM (PKCS#8).
        #[arg(long)]
        key: PathBuf,
        /// The key id servers know the key by.
        #[arg(long)]
        kid: String,
        /// The bundle's name, which servers check (`[remote_bundle] name`,
        /// by default their URL's file name without `.tar.gz`). Defaults to
        /// the archive's file name without `.tar.gz`.
        #[arg(long)]
        name: Option<String>,
        /// Where to write the signature. Defaults to ARCHIVE.sig.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the public JWKS of a signing key, for servers'
    /// `[remote_bundle] trusted_keys`.
    PublicKey {
        /// The signing key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The key id.
        #[arg(long)]
        kid: String,
    },
}

/// `greenlight keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add the next signing key. Running servers publish it at their next
    /// housekeeping sweep and sign with it once it has been published for
    /// two sweeps; then they retire the old key, which stays published for
    /// their `signing.retain_for` so the tokens it signed keep verifying.
    Rotate {
        /// The store: `sqlite://FILE` or `postgres://...`.
        #[arg(long)]
        store: String,
        /// The servers' settings, for the key-encryption key that seals the
        /// new key as theirs are sealed.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Withdraw a key at once, as after a leak: it stops signing and is no
    /// longer published, so tokens it signed are refused. Servers on
    /// PostgreSQL reload their keys at once; on SQLite at the next sweep.
    /// If it was the key signing, a new one takes over.
    Revoke {
        /// The store: `sqlite://FILE` or `postgres://...`.
        #[arg(long)]
        store: String,
        /// The key id to withdraw (a thumbprint may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// List the keys: kid, algorithm, state (active, retired, revoked), created, published until.
    List {
        /// The store: `sqlite://FILE` or `postgres://...`.
        #[arg(long)]
        store: String,
    },
}

/// `greenlight component ...`
#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Print where the build put greenlight.wasm.
    Path,
    /// Write the component embedded in this binary to a file.
    Export {
        /// Where to write it.
        out: PathBuf,
    },
}

/// Which engine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// greenlight.wasm in wasmtime (what gateways run).
    Wasm,
    /// The Rust core, natively.
    Native,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decides one request with the chosen engine.
pub fn decide(
    bundle: &Path,
    request: greenlight_core::HttpRequest,
    now: u64,
    engine: EngineKind,
    keys: &[(String, String)],
) -> anyhow::Result<Decision> {
    let files = greenlight_host::read_bundle_dir(bundle)
        .with_context(|| format!("cannot read bundle {}", bundle.display()))?;
    match engine {
        EngineKind::Native => {
            let mut engine = greenlight_core::Engine::load(&files).map_err(bundle_error)?;
            for (issuer, jwks) in keys {
                engine.set_keys(issuer, jwks).map_err(bundle_error)?;
            }
            Ok(engine.evaluate_http(&request, now))
        }
        EngineKind::Wasm => {
            let engine = greenlight_host::Engine::load(greenlight_component::GREENLIGHT_WASM)?;
            let policy = engine.load_bundle(files).map_err(|e| match e {
                greenlight_host::HostError::Bundle(le) => bundle_error(le),
                other => other.into(),
            })?;
            for (issuer, jwks) in keys {
                policy.set_keys(issuer, jwks)?;
            }
            Ok(policy.evaluate_http(&request, now))
        }
    }
}

fn bundle_error(e: LoadError) -> anyhow::Error {
    match e {
        LoadError::InvalidBundle(problems) => anyhow::anyhow!(
            "the bundle is invalid:\n{}",
            problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        LoadError::Other(s) => anyhow::anyhow!(s),
    }
}

fn split_pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .with_context(|| format!("{what} `{s}` should be KEY=VALUE"))
}

/// Runs a parsed command line, writing to `out`. Returns the exit code.
pub fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<i32> {
    match cli.command {
        Command::Check {
            bundle,
            request,
            token,
            now,
            engine,
            keys,
        } => {
            let text = std::fs::read_to_string(&request)
                .with_context(|| format!("cannot read request {}", request.display()))?;
            let file: RequestFile = serde_json::from_str(&text)
                .with_context(|| format!("request {} is not valid", request.display()))?;
            let mut key_docs = Vec::new();
            for k in &keys {
                let (issuer, path) = split_pair(k, "--keys")?;
                let jwks = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read key set {path}"))?;
                key_docs.push((issuer, jwks));
            }
            let decision = decide(
                &bundle,
                file.into_http(token.as_deref()),
                now.unwrap_or_else(unix_now),
                engine,
                &key_docs,
            )?;
            writeln!(out, "{}", serde_json::to_string_pretty(&decision)?)?;
            Ok(0)
        }
        Command::Explain {
            bundle,
            request,
            token,
            test,
            now,
            keys,
        } => {
            let files = greenlight_host::read_bundle_dir(&bundle)
                .with_context(|| format!("cannot read bundle {}", bundle.display()))?;
            let mut engine = greenlight_core::Engine::load(&files).map_err(bundle_error)?;
            for k in &keys {
                let (issuer, path) = split_pair(k, "--keys")?;
                let jwks = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read key set {path}"))?;
                engine.set_keys(&issuer, &jwks).map_err(bundle_error)?;
            }
            let now = now.unwrap_or_else(unix_now);
            let explanation = match (request, test) {
                (Some(request), _) => {
                    let text = std::fs::read_to_string(&request)
                        .with_context(|| format!("cannot read request {}", request.display()))?;
                    let file: RequestFile = serde_json::from_str(&text)
                        .with_context(|| format!("request {} is not valid", request.display()))?;
                    engine.explain_http(&file.into_http(token.as_deref()), now)
                }
                (None, Some(name)) => {
                    let tests = crate::policytest::read_files(&bundle)?;
                    engine
                        .explain_test(&tests, &name, now)
                        .map_err(|e| anyhow::anyhow!(e))?
                }
                (None, None) => anyhow::bail!("give --request or --test"),
            };
            write!(out, "{}", greenlight_core::explain::render(&explanation))?;
            Ok(0)
        }
        Command::Serve {
            bundle,
            listen,
            store,
            public_url,
            config: settings_file,
            dev,
            component,
        } => {
            let settings = match &settings_file {
                Some(path) => crate::serve::Settings::load(path)?,
                None => crate::serve::Settings::default(),
            };
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let addr = listener.local_addr()?;
                let config = crate::serve::ServeConfig {
                    bundle,
                    component,
                    store,
                    public_url,
                    settings,
                    development: dev,
                };
                let state =
                    crate::serve::prepare(&config, addr, crate::serve::Clock::system()).await?;
                writeln!(out, "greenlight serving on http://{addr}")?;
                out.flush()?;
                crate::serve::run(listener, state, crate::serve::shutdown_signal()).await
            })?;
            Ok(0)
        }
        Command::Test {
            bundle,
            component,
            now,
        } => crate::policytest::run_command(
            &bundle,
            component.as_deref(),
            now.unwrap_or_else(unix_now),
            out,
        ),
        Command::Keys { command } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                match command {
                    KeysCommand::Rotate { store, config } => {
                        let settings = match &config {
                            Some(path) => crate::serve::Settings::load(path)?,
                            None => crate::serve::Settings::default(),
                        };
                        let seal = settings.signing.seal()?;
                        let store = greenlight_store::Store::connect(&store).await?;
                        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
                        let kid = crate::serve::Signer::rotate(&store, now, &seal).await?;
                        writeln!(
                            out,
                            "added {kid}: servers publish it at their next sweep and sign with it after two"
                        )?;
                    }
                    KeysCommand::Revoke { store, kid } => {
                        let store = greenlight_store::Store::connect(&store).await?;
                        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
                        store.revoke_signing_key(&kid, now).await?;
                        writeln!(
                            out,
                            "revoked {kid}: no longer published or signing; servers on PostgreSQL drop it now, others at their next sweep"
                        )?;
                    }
                    KeysCommand::List { store } => {
                        let store = greenlight_store::Store::connect(&store).await?;
                        for k in store.signing_keys().await? {
                            // Retired keys stay published for a while;
                            // a revoked one is withdrawn at once.
                            let state = match (k.is_active(), k.publish_until) {
                                (true, _) => "active",
                                (false, Some(_)) => "retired",
                                (false, None) => "revoked",
                            };
                            let until = k
                                .publish_until
                                .map_or_else(|| "-".to_owned(), |u| u.to_string());
                            writeln!(
                                out,
                                "{} {} {state} created {} published-until {until}",
                                k.kid, k.algorithm, k.created_at
                            )?;
                        }
                    }
                }
                anyhow::Ok(())
            })?;
            Ok(0)
        }
        Command::Bundle {
            command:
                command @ (BundleCommand::Build { .. }
                | BundleCommand::Sign { .. }
                | BundleCommand::PublicKey { .. }),
        } => crate::archive::run_command(command, unix_now(), out),
        Command::Bundle {
            command: BundleCommand::Validate { dir },
        } => {
            let files = greenlight_host::read_bundle_dir(&dir)
                .with_context(|| format!("cannot read bundle {}", dir.display()))?;
            match greenlight_core::Engine::load(&files) {
                Ok(engine) => {
                    writeln!(
                        out,
                        "bundle `{}` is valid (policy hash {})",
                        dir.display(),
                        engine.policy_hash()
                    )?;
                    Ok(0)
                }
                Err(LoadError::InvalidBundle(problems)) => {
                    writeln!(
                        out,
                        "bundle `{}` has {} problem(s):",
                        dir.display(),
                        problems.len()
                    )?;
                    for p in &problems {
                        let kind = serde_json::to_value(p.kind)?;
                        writeln!(out, "  {p} [{}]", kind.as_str().unwrap_or(""))?;
                    }
                    Ok(1)
                }
                Err(LoadError::Other(s)) => bail!(s),
            }
        }
        Command::Component {
            command: ComponentCommand::Path,
        } => {
            writeln!(out, "{}", greenlight_component::GREENLIGHT_WASM_PATH)?;
            Ok(0)
        }
        Command::Component {
            command: ComponentCommand::Export { out: path },
        } => {
            std::fs::write(&path, greenlight_component::GREENLIGHT_WASM)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(
                out,
                "wrote {} ({} bytes)",
                path.display(),
                greenlight_component::GREENLIGHT_WASM.len()
            )?;
            Ok(0)
        }
        Command::DevToken {
            bundle,
            sub,
            scope,
            client,
            claims,
            ttl,
            now,
        } => {
            let claims = claims
                .iter()
                .map(|c| split_pair(c, "--claim"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let token = dev_token(
                &bundle,
                &DevTokenRequest {
                    subject: sub,
                    scope,
                    client_id: client,
                    claims,
                    ttl,
                    now: now.unwrap_or_else(unix_now),
                },
            )?;
            writeln!(out, "{token}")?;
            Ok(0)
        }
    }
}
