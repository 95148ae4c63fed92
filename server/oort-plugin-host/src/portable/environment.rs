//! The Python environment of a portable plugin that brings its dependencies.
//!
//! A Python plugin declares what it needs (`requirements` in its manifest, or
//! a `requirements.txt` at the archive's root) and may carry the wheels in
//! `wheels/`. Installing it makes `<folder>/.venv` with the configured
//! interpreter and installs the requirements there with pip: from the bundled
//! wheels only, unless `plugin_pip_index_url` lets pip reach an index. The
//! plugin then runs on the environment's interpreter, which sees neither the
//! system's packages nor the user's.
//!
//! pip runs with the plugin processes' minimal environment and without any
//! pip configuration file, so neither the server's secrets nor a user's
//! `pip.conf` reach it; a requirement cannot be a pip option (`--index-url`,
//! `-e`, `-r`), so an archive cannot send pip elsewhere.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use tokio::io::{AsyncRead, BufReader};
use tokio::process::Command;

use super::output::{self, LogBudget};
use super::process::{INHERITED_ENV, StderrTail, read_line};
use crate::error::HostError;

/// The environment's folder, inside the plugin's.
pub const VENV_DIR: &str = ".venv";
/// The folder of bundled wheels, inside the plugin's.
pub const WHEELS_DIR: &str = "wheels";
/// The requirements file at the archive's root, when the manifest names none.
pub const REQUIREMENTS_FILE: &str = "requirements.txt";
/// Most requirements a plugin may declare.
const MAX_REQUIREMENTS: usize = 200;
/// Longest requirement.
const MAX_REQUIREMENT_CHARS: usize = 300;

/// How environments are made (oortd's `plugin_pip_index_url` and
/// `plugin_environment_timeout_ms`); the interpreter is `plugin_python`.
#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    /// The package index pip may install from; `None`: the bundled wheels only.
    pub index_url: Option<String>,
    /// How long making the environment and installing may take.
    pub timeout: Duration,
}

/// The requirements of a plugin in `dir`: the manifest's, else those of its
/// `requirements.txt`; `None` when it declares none (it then runs on the
/// configured interpreter, as before).
pub fn requirements(dir: &Path, declared: Option<&[String]>) -> Result<Option<Vec<String>>, HostError> {
    let lines: Vec<String> = match declared {
        Some(declared) => declared.to_vec(),
        None => match std::fs::read_to_string(dir.join(REQUIREMENTS_FILE)) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HostError::Archive(format!("{REQUIREMENTS_FILE}: {e}"))),
        },
    };
    let mut requirements = Vec::new();
    for line in &lines {
        let requirement = line.split('#').next().unwrap_or_default().trim();
        if requirement.is_empty() {
            continue;
        }
        if requirement.starts_with('-') || requirement.contains("://") || requirement.contains(" @ ") {
            return Err(HostError::Manifest(format!(
                "requirement {requirement:?}: only package names with versions are taken (no pip options, URLs or paths)"
            )));
        }
        if requirement.len() > MAX_REQUIREMENT_CHARS {
            return Err(HostError::Manifest(format!(
                "a requirement is longer than {MAX_REQUIREMENT_CHARS} characters"
            )));
        }
        requirements.push(requirement.to_owned());
    }
    if requirements.len() > MAX_REQUIREMENTS {
        return Err(HostError::Manifest(format!("more than {MAX_REQUIREMENTS} requirements")));
    }
    Ok(Some(requirements))
}

/// The interpreter of the environment in the plugin folder `dir`.
pub fn interpreter(dir: &Path) -> PathBuf {
    dir.join(VENV_DIR).join("bin").join("python")
}

/// Makes the environment of plugin `plugin` in its folder `dir` and installs
/// `requirements` into it; returns what was installed (`name version`).
/// Progress goes to the log, one line per step of pip.
pub async fn prepare(
    plugin: &str,
    dir: &Path,
    requirements: &[String],
    python: &str,
    config: &EnvironmentConfig,
) -> Result<Vec<String>, HostError> {
    let fail = |message: String| HostError::Environment { plugin: plugin.to_owned(), message };
    let venv = dir.join(VENV_DIR);
    if venv.exists() {
        return Err(HostError::Archive(format!("the archive holds {VENV_DIR}, which the server makes itself")));
    }
    let deadline = Instant::now() + config.timeout;
    let started = Instant::now();
    tracing::info!(plugin, python, "making the plugin's Python environment");
    let mut make = command(Path::new(python), dir);
    make.arg("-m").arg("venv").arg(&venv);
    run(plugin, make, deadline, config.timeout).await.map_err(|e| {
        fail(format!("`{python} -m venv` failed: {e} (on Debian, the python3-venv package provides venv)"))
    })?;
    if requirements.is_empty() {
        return Ok(Vec::new());
    }
    let listed = venv.join("oort-requirements.txt");
    std::fs::write(&listed, requirements.join("\n") + "\n")
        .map_err(|e| HostError::io("writing the plugin's requirements", e))?;
    let mut install = command(&interpreter(dir), dir);
    install.args(["-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--no-cache-dir"]);
    install.args(["--progress-bar", "off", "--requirement"]).arg(&listed);
    let wheels = dir.join(WHEELS_DIR);
    if wheels.is_dir() {
        install.arg("--find-links").arg(&wheels);
    }
    match &config.index_url {
        Some(url) => install.args(["--index-url", url]),
        None => install.arg("--no-index"),
    };
    tracing::info!(plugin, requirements = %requirements.join(", "), wheels = wheels.is_dir(), index = ?config.index_url, "installing the plugin's requirements");
    run(plugin, install, deadline, config.timeout).await.map_err(|e| fail(explain(&e, config.index_url.is_some())))?;
    let installed = installed(dir);
    tracing::info!(plugin, installed = %installed.join(", "), seconds = started.elapsed().as_secs_f64(), "plugin environment ready");
    Ok(installed)
}

/// The distributions installed in the environment of the folder `dir`, as
/// `name version`, besides pip's own; empty when it has none.
pub fn installed(dir: &Path) -> Vec<String> {
    let Ok(lib) = std::fs::read_dir(dir.join(VENV_DIR).join("lib")) else { return Vec::new() };
    let mut found = Vec::new();
    for python in lib.flatten() {
        let Ok(entries) = std::fs::read_dir(python.path().join("site-packages")) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".dist-info") else { continue };
            // `<name>-<version>`: names are normalized to underscores in dist-info folders.
            if let Some((name, version)) = stem.rsplit_once('-')
                && !matches!(name, "pip" | "setuptools")
            {
                found.push(format!("{name} {version}"));
            }
        }
    }
    found.sort();
    found
}

/// A command with the plugin processes' minimal environment and no pip configuration.
fn command(program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PYTHONNOUSERSITE", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `command`, its output in the log within the plugin processes' budget
/// ([`output`]); its last stderr lines if it fails.
async fn run(plugin: &str, mut command: Command, deadline: Instant, timeout: Duration) -> Result<(), String> {
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let pid = child.id().unwrap_or_default();
    let (budget, errors) = (Arc::new(LogBudget::default()), StderrTail::default());
    let mut readers = Vec::new();
    let pipes: [(&'static str, Option<Box<dyn AsyncRead + Send + Unpin>>); 2] = [
        ("stdout", child.stdout.take().map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>)),
        ("stderr", child.stderr.take().map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>)),
    ];
    for (stream, pipe) in pipes {
        let Some(pipe) = pipe else { continue };
        let (plugin, budget, errors) = (plugin.to_owned(), Arc::clone(&budget), errors.clone());
        readers.push(tokio::spawn(async move {
            let mut reader = BufReader::new(pipe);
            while let Some(line) = read_line(&mut reader).await {
                if line.trim().is_empty() {
                    continue;
                }
                output::log_line(&budget, &plugin, pid, stream, line.trim());
                if stream == "stderr" {
                    errors.push(line);
                }
            }
            output::report_suppressed(&plugin, pid, budget.take_suppressed());
        }));
    }
    let status = match tokio::time::timeout_at(deadline.into(), child.wait()).await {
        Ok(status) => status.map_err(|e| e.to_string())?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!("not done after {} s (plugin_environment_timeout_ms)", timeout.as_secs()));
        }
    };
    for reader in readers {
        let _ = reader.await;
    }
    if status.success() {
        return Ok(());
    }
    Err(format!("{status}: {}", errors.text()))
}

/// pip's failure in a sentence that names the requirement it could not meet.
fn explain(error: &str, index: bool) -> String {
    const MISSING: &str = "No matching distribution found for ";
    let Some(at) = error.find(MISSING) else { return format!("pip install failed: {error}") };
    let requirement = error[at + MISSING.len()..].split(" | ").next().unwrap_or_default().trim();
    let whence = if index {
        "in the archive's wheels/ nor on the index"
    } else {
        "in the archive's wheels/ (and plugin_pip_index_url is not set, so no index is asked)"
    };
    format!("requirement '{requirement}' failed: no distribution of it for this interpreter {whence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_come_from_the_manifest_or_the_file_and_are_only_names_with_versions() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(requirements(dir.path(), None).unwrap(), None);
        std::fs::write(dir.path().join(REQUIREMENTS_FILE), "# deps\ngrpcio>=1.85,<2  # rpc\n\nprotobuf\n").unwrap();
        assert_eq!(requirements(dir.path(), None).unwrap().unwrap(), ["grpcio>=1.85,<2", "protobuf"]);
        let declared = vec!["numpy==2.1".to_owned()];
        assert_eq!(requirements(dir.path(), Some(&declared)).unwrap().unwrap(), ["numpy==2.1"]);
        for bad in ["--index-url http://evil/", "-r other.txt", "pkg @ https://x/p.whl", "git+https://x/y"] {
            let error = requirements(dir.path(), Some(&[bad.to_owned()])).unwrap_err().to_string();
            assert!(error.contains("only package names"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_missing_distribution_is_named() {
        let pip = "exit status: 1: ERROR: Could not find a version that satisfies the requirement numpy==9 (from versions: none) | ERROR: No matching distribution found for numpy==9";
        let message = explain(pip, false);
        assert!(message.starts_with("requirement 'numpy==9' failed: "), "{message}");
        assert!(message.contains("plugin_pip_index_url"), "{message}");
        assert!(explain("exit status: 2: boom", true).contains("boom"));
    }
}
