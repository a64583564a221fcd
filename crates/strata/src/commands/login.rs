//! `strata login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]`: check credentials
//! against a registry and store them where docker does (`config.json`, or the configured
//! credential helper), so docker, skopeo and strata share logins.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use strata_registry::credentials::config_key;
use strata_registry::{Client, ClientOptions, Credential, DockerConfig};

use crate::commands::Global;
use crate::commands::pull::{RegistryArgs, runtime, with_hint};

/// Log in to a registry
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible in the process list: prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The registry [default: Docker Hub]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// The registry a `login`/`logout` argument names, as docker reads it: Docker Hub's many
/// spellings are `docker.io`; a URL is reduced to its host.
pub fn registry_name(server: Option<&str>) -> String {
    let Some(server) = server.map(str::trim).filter(|s| !s.is_empty()) else {
        return "docker.io".to_string();
    };
    let without_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

pub fn run(_global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let registry = registry_name(args.server.as_deref());
    let password = match (args.password, args.password_stdin) {
        (Some(password), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            password
        }
        (None, true) => {
            if args.username.is_none() {
                bail!("must provide --username with --password-stdin");
            }
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("cannot read the password from stdin")?;
            input.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            let hint = if std::io::stdin().is_terminal() {
                "hint: pass the password with --password-stdin (interactive prompts are not supported)"
            } else {
                "hint: pipe the password into --password-stdin"
            };
            bail!("no password given\n{hint}");
        }
    };
    let Some(username) = args.username.filter(|u| !u.is_empty()) else {
        bail!("no username given\nhint: pass -u USER");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let credential = Credential {
        username,
        secret: password,
    };

    // Verify against the registry before writing anything.
    let mut options = ClientOptions::from_environment()?;
    // Only the credentials being checked: not whatever config.json holds for the registry.
    options.docker_config = None;
    options
        .insecure_registries
        .extend(args.registry.insecure_registries.iter().cloned());
    options
        .credentials
        .insert(registry.clone(), credential.clone());
    let client = Client::new(options)?;
    runtime()?
        .block_on(client.ping(&registry))
        .map_err(with_hint)?;

    let mut config = DockerConfig::load_default()?;
    config.store(&registry, &credential)?;
    config.save()?;
    eprintln!(
        "Credentials saved to {} for {}",
        config.path().display(),
        config_key(&registry)
    );
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        let cases = [
            (None, "docker.io"),
            (Some(""), "docker.io"),
            (Some("docker.io"), "docker.io"),
            (Some("https://index.docker.io/v1/"), "docker.io"),
            (Some("index.docker.io"), "docker.io"),
            (Some("localhost:5001"), "localhost:5001"),
            (Some("http://127.0.0.1:5001/"), "127.0.0.1:5001"),
            (Some("registry.example/v2/"), "registry.example"),
        ];
        for (server, expected) in cases {
            assert_eq!(registry_name(server), expected, "{server:?}");
        }
    }
}
