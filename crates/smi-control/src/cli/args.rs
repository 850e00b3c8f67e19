//! Arguments shared by the policy commands, and loading the policy they name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue};
use smi_core::{DEFAULT_TRUST_DOMAIN, Options, PathMatch, Snapshot};

use super::EXIT_USAGE;
use super::output::diag;
use crate::files::load_paths;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// SMI files or directories (YAML or JSON, multi-document).
    #[arg(long, required_unless_present = "kubernetes", num_args = 1.., value_name = "PATH")]
    pub policy: Vec<PathBuf>,
    /// Read the policy from the cluster's SMI resources instead (the kubeconfig KUBECONFIG or
    /// --kubeconfig names, or the in-cluster configuration); built with the `kubernetes` feature.
    #[arg(long, conflicts_with = "policy")]
    pub kubernetes: bool,
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// Trust domain of the SPIFFE identities.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// How pathRegex is anchored: `prefix` (SMI spec: ^re) or `full` (OSM/Envoy: ^re$).
    #[arg(long, value_enum, default_value_t = PathMode::Prefix)]
    pub path_match: PathMode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PathMode {
    Prefix,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl PolicyArgs {
    /// Loads and compiles; on load errors prints them and returns the usage exit code.
    pub fn snapshot(&self, permissive: bool) -> Result<Snapshot, ExitCode> {
        let loaded = if self.kubernetes {
            load_cluster(self.kubeconfig.as_deref()).map_err(|e| usage(&e))?
        } else {
            load_paths(&self.policy)
        };
        for d in loaded.diagnostics.iter() {
            let level = if d.is_error() { "error" } else { "warning" };
            diag!("{level}: {d}");
        }
        if !loaded.is_valid() {
            return Err(ExitCode::from(EXIT_USAGE));
        }
        let options = Options::default()
            .trust_domain(&self.trust_domain)
            .path_match(match self.path_match {
                PathMode::Prefix => PathMatch::Prefix,
                PathMode::Full => PathMatch::Full,
            })
            .permissive(permissive);
        let snapshot = Snapshot::compile(loaded.policy, options);
        for w in snapshot.warnings() {
            diag!("warning: {w}");
        }
        Ok(snapshot)
    }
}

/// Every SMI resource of the cluster, loaded as files are.
#[cfg(feature = "kubernetes")]
fn load_cluster(kubeconfig: Option<&std::path::Path>) -> Result<smi_core::load::Loaded, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    let documents = runtime
        .block_on(async {
            let client = crate::kubernetes::client(kubeconfig).await?;
            crate::kubernetes::list_documents(&client).await
        })
        .map_err(|e| format!("--kubernetes: {e}"))?;
    let mut loader = smi_core::load::Loader::new();
    for document in &documents {
        crate::source::add_document(&mut loader, document);
    }
    Ok(loader.finish())
}

#[cfg(not(feature = "kubernetes"))]
fn load_cluster(_: Option<&std::path::Path>) -> Result<smi_core::load::Loaded, String> {
    Err("--kubernetes: this smictl was built without the `kubernetes` feature (cargo build -p smi-control --features kubernetes)".into())
}

/// `--header 'Name: value'` occurrences as a header map.
pub fn header_map(headers: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("--header {h:?}: invalid header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("--header {h:?}: invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Prints a usage error and returns the usage exit code.
pub fn usage(message: &str) -> ExitCode {
    diag!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}
